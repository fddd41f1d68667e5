import { describe, expect, it } from 'vitest';
import { listDescriptors, loadDescriptor, loadLabels, validateDescriptor } from '../../src/model/descriptor.js';

describe('model descriptors', () => {
  it('the default MobileNet descriptor is valid and maps classes by WordNet id', () => {
    expect(listDescriptors()).toContain('mobilenet_v1_0.75');
    const d = loadDescriptor();
    expect(d.input).toMatchObject({ size: [224, 224], resizeShorter: 256, range: [-1, 1] });
    expect(d.output).toEqual({ kind: 'softmax', logits: 'conv_preds' });
    const labels = loadLabels(d);
    expect(labels.outputs).toBe(1000);
    expect(labels.resolve('n02066245').index).toBe(147);
    expect(labels.resolve('grey whale').index).toBe(147);
    expect(labels.resolve('great_white_shark').wnid).toBe('n01484850');
  });

  it('suggests the closest model on a typo', () => {
    expect(() => loadDescriptor('mobilenet_v1_075')).toThrow(/unknown model "mobilenet_v1_075".*mobilenet_v1_0\.75/);
  });

  it('names the bad key in one line', () => {
    const base = { name: 'x', format: 'layers', weights: { localName: 'x' }, input: { size: [224, 224] }, labels: { set: 'imagenet-1000' }, output: { kind: 'logits' }, layers: { default: 'a' } };
    expect(validateDescriptor(base, 'x.json').input.resizeShorter).toBe(256);
    expect(() => validateDescriptor({ ...base, format: 'onnx' }, 'x.json')).toThrow(/x\.json: "format" must be/);
    expect(() => validateDescriptor({ ...base, input: { size: [224] } }, 'x.json')).toThrow(/"input.size"/);
    expect(() => validateDescriptor({ ...base, output: { kind: 'softmax' } }, 'x.json')).toThrow(/"output.logits" must name the pre-softmax layer/);
    expect(() => validateDescriptor({ ...base, labels: { set: 'imagenet-1000', offset: 2 } }, 'x.json')).toThrow(/"labels.offset"/);
    expect(() => validateDescriptor({ ...base, input: { size: [224, 224], mean: [0.5, 0.5, 0.5] } }, 'x.json')).toThrow(/"input.std"/);
  });
});
