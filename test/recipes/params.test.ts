import { describe, expect, it } from 'vitest';
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
