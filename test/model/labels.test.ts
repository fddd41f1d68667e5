import { describe, expect, it } from 'vitest';
import { LabelSet } from '../../src/model/labels.js';
import { TINY_CLASSES } from '../helpers/tiny-models.js';

describe('LabelSet', () => {
  const labels = new LabelSet({ name: 't', classes: TINY_CLASSES });
  const withBackground = new LabelSet({ name: 't', classes: TINY_CLASSES }, 1);

  it('resolves names, underscores, WordNet ids and unique synonyms', () => {
    expect(labels.resolve('grey whale').wnid).toBe('n02066245');
    expect(labels.resolve('Grey_Whale').wnid).toBe('n02066245');
    expect(labels.resolve('n01484850').name).toBe('great_white_shark');
    expect(labels.resolve('devilfish').wnid).toBe('n02066245');
  });

  it('offsets output indices for a background class', () => {
    expect(labels.resolve('baseball').index).toBe(2);
    expect(withBackground.resolve('baseball').index).toBe(3);
    expect(withBackground.atOutput(0)).toBeUndefined();
    expect(withBackground.atOutput(3)?.name).toBe('baseball');
    expect(withBackground.outputs).toBe(6);
  });

  it('rejects ambiguous names with the WordNet ids to use instead', () => {
    expect(() => labels.resolve('crane')).toThrow(/ambiguous.*n03126707.*n02012849/);
    expect(labels.tryResolve('crane')).toBeUndefined();
  });

  it('suggests the closest classes on a typo', () => {
    expect(() => labels.resolve('grey whal')).toThrow(/unknown class "grey whal"; closest: "grey whale"/);
    expect(() => labels.resolve('great whte shark')).toThrow(/closest: "great white shark"/);
  });
});
