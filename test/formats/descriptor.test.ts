import { describe, expect, it } from 'vitest';
import { isPatchAtlasError } from '../../src/errors.js';
import { DESCRIPTOR_SCHEMA, validateDescriptor } from '../../src/formats/descriptor.js';

/** The descriptor format: versioned, every key known, one line per mistake. */
const base = {
  name: 'mine',
  format: 'layers',
  weights: { localName: 'mine' },
  input: { size: [224, 224], range: [-1, 1] },
  labels: { set: 'imagenet-1000' },
  output: { kind: 'softmax', logits: 'conv_preds' },
  layers: { default: 'conv_pw_11_relu', aliases: { anything: 'goes_here' } },
};

function refusal(raw: unknown): { message: string; hint?: string } {
  try {
    validateDescriptor(raw, '/d/mine.json');
  } catch (e) {
    expect(isPatchAtlasError(e) && e.code).toBe('BAD_DESCRIPTOR');
    return e as { message: string; hint?: string };
  }
  throw new Error('accepted');
}

describe('validateDescriptor', () => {
  it('fills the documented defaults', () => {
    const d = validateDescriptor({ ...base, schema: DESCRIPTOR_SCHEMA }, '/d/mine.json');
    expect(d.input).toEqual({ size: [224, 224], resizeShorter: 256, range: [-1, 1], channelOrder: 'rgb', layout: 'nhwc' });
    expect(d.labels).toEqual({ set: 'imagenet-1000', offset: 0 });
    expect(d.description).toBe('');
  });

  it('refuses an unknown key anywhere with the closest known one, and leaves aliases free', () => {
    const top = refusal({ ...base, lables: base.labels });
    expect(top.message).toMatch(/unknown key "lables"/);
    expect(top.hint).toMatch(/^did you mean "labels"\?/);
    const inner = refusal({ ...base, input: { ...base.input, resize_shorter: 256 } });
    expect(inner.message).toMatch(/unknown key "input\.resize_shorter"/);
    expect(inner.hint).toMatch(/^did you mean "input\.resizeShorter"\?/);
  });

  it('reads version 1, and names a newer version as such', () => {
    expect(refusal({ ...base, schema: 'patch-atlas-model/2' }).message).toMatch(/"schema" is patch-atlas-model\/2, from a newer patch-atlas; this one reads patch-atlas-model\/1/);
    expect(refusal({ ...base, schema: 3 }).message).toMatch(/"schema" must be "patch-atlas-model\/1"/);
    expect(refusal([base]).message).toMatch(/"\(root\)" must be an object/);
  });
});
