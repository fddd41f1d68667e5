import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { STANDARD_MIN_SIDE, standardTransforms } from '../../src/featurevis/transforms.js';
import { ATLAS_PARAMS, MAX_GRID } from '../../src/recipes/atlas.js';
import { ICON_PARAMS } from '../../src/recipes/icons.js';
import { MAKE_PATCH_PARAMS } from '../../src/recipes/patches.js';
import { mulberry32 } from '../../src/util/random.js';
import { isPatchAtlasError } from '../../src/errors.js';
import { checkParams, type ParamSpec } from '../../src/recipes/params.js';

/** Parameters are checked once: a bad or non-numeric value is a BAD_FLAG line naming the flag, never ignored. */
describe('checkParams', () => {
  const spec: ParamSpec<{ batchSize: number }> = { batchSize: { default: 16, check: (v) => (Number.isInteger(v) && v >= 1 ? undefined : 'must be a whole number ≥ 1') } };

  it('refuses 0, a negative, a fraction and text given to a number flag, naming the flag', () => {
    for (const [v, shown] of [[0, '0'], [-3, '-3'], [1.5, '1.5'], [Number.NaN, '(not a number)']] as const) {
      const err = (() => {
        try {
          checkParams(spec, { batchSize: v });
        } catch (e) {
          return e;
        }
      })();
      expect(isPatchAtlasError(err) && err.code).toBe('BAD_FLAG');
      expect((err as Error).message).toBe(`--batch-size ${shown} must be a whole number ≥ 1`);
    }
    expect(checkParams(spec, {}).batchSize).toBe(16);
  });
});

describe('the smallest icon and icon-patch side is the one the transforms accept', () => {
  it('refuses sides below STANDARD_MIN_SIDE up front, and the standard transforms run at that side', async () => {
    await initBackend('wasm');
    for (const [spec, key] of [[ICON_PARAMS, 'iconPx'], [MAKE_PATCH_PARAMS, 'patchPx']] as const) {
      const err = (() => {
        try {
          checkParams(spec as ParamSpec<Record<string, unknown>>, { [key]: STANDARD_MIN_SIDE - 8 });
        } catch (e) {
          return e;
        }
      })();
      expect(isPatchAtlasError(err) && err.code).toBe('BAD_FLAG');
    }
    for (let seed = 0; seed < 20; seed++) {
      const y = tf.tidy(() => standardTransforms()(tf.zeros([1, STANDARD_MIN_SIDE, STANDARD_MIN_SIDE, 3]), mulberry32(seed)));
      expect(y.shape).toEqual([1, STANDARD_MIN_SIDE, STANDARD_MIN_SIDE, 3]);
      y.dispose();
    }
    expect(() => tf.tidy(() => standardTransforms()(tf.zeros([1, 28, 28, 3]), mulberry32(0)))).toThrow(/leaves nothing/);
  });
});

describe('atlas grid', () => {
  it('refuses a grid whose cells would not fit in memory, before any work', () => {
    const err = (() => {
      try {
        checkParams(ATLAS_PARAMS, { grid: 100_000 });
      } catch (e) {
        return e;
      }
    })();
    expect(isPatchAtlasError(err) && err.code).toBe('BAD_FLAG');
    expect((err as Error).message).toMatch(new RegExp(`^--grid 100000 must be a whole number from 1 to ${MAX_GRID}`));
    expect(checkParams(ATLAS_PARAMS, { grid: MAX_GRID }).grid).toBe(MAX_GRID);
  });
});
