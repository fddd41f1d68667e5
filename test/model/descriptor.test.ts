import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listDescriptors, loadDescriptor, loadLabels, validateDescriptor } from '../../src/model/descriptor.js';
import { removeDir } from '../helpers/images.js';
import { writeTinyDescriptor } from '../helpers/tiny-models.js';

const root = mkdtempSync(join(tmpdir(), 'pa-descriptor-'));
afterAll(() => removeDir(root));

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
    expect(() => validateDescriptor({ ...base, format: 'caffe' }, 'x.json')).toThrow(/x\.json: "format" must be/);
    expect(() => validateDescriptor({ ...base, input: { size: [224] } }, 'x.json')).toThrow(/"input.size"/);
    expect(() => validateDescriptor({ ...base, output: { kind: 'softmax' } }, 'x.json')).toThrow(/"output.logits" must name the pre-softmax layer/);
    expect(() => validateDescriptor({ ...base, labels: { set: 'imagenet-1000', offset: 2 } }, 'x.json')).toThrow(/"labels.offset"/);
    expect(() => validateDescriptor({ ...base, input: { size: [224, 224], mean: [0.5, 0.5, 0.5] } }, 'x.json')).toThrow(/"input.std"/);
  });

  it('says where a descriptor breaks JSON, by line and column', () => {
    const path = join(root, 'broken.json');
    writeFileSync(path, '{\n  "name": "x",\n  "format": "layers"\n  "weights": {}\n}');
    expect(() => loadDescriptor(path)).toThrow(expect.objectContaining({ code: 'BAD_DESCRIPTOR', message: expect.stringMatching(/^model descriptor .*broken\.json is not valid JSON: .*line 4, column 3$/) }));
  });

  it('refuses a label file without "classes", or with bad JSON, naming the file', () => {
    const opts = { format: 'layers', size: 16, logits: 'conv_preds', defaultLayer: 'conv_pw_1_relu' } as const;
    const noClasses = loadDescriptor(writeTinyDescriptor(join(root, 'noclasses'), opts));
    writeFileSync(join(root, 'noclasses', 'labels.json'), JSON.stringify({ name: 'tiny', labels: [['n01440764', 'tench']] }));
    const file = join(root, 'noclasses', 'labels.json');
    expect(() => loadLabels(noClasses)).toThrow(expect.objectContaining({ code: 'BAD_DESCRIPTOR', message: `label set ${file} must hold "classes": [[wnid, name, long?], ...]` }));
    const badClass = loadDescriptor(writeTinyDescriptor(join(root, 'badclass'), opts));
    writeFileSync(join(root, 'badclass', 'labels.json'), JSON.stringify({ classes: [['n01440764', 'tench'], ['n01443537']] }));
    expect(() => loadLabels(badClass)).toThrow(/labels\.json must hold "classes": \[\[wnid, name, long\?\], \.\.\.\]$/);
    const badJson = loadDescriptor(writeTinyDescriptor(join(root, 'badjson'), opts));
    writeFileSync(join(root, 'badjson', 'labels.json'), '{"classes": [\n  ["n01440764", "tench"]\n  ["n01443537", "goldfish"]\n]}');
    expect(() => loadLabels(badJson)).toThrow(expect.objectContaining({ code: 'BAD_DESCRIPTOR', message: expect.stringMatching(/^label set .*badjson.labels\.json is not valid JSON: .*line 3, column 3$/) }));
    // A long label is optional: [wnid, name] pairs are a label set too, and other keys are kept.
    const pairs = loadDescriptor(writeTinyDescriptor(join(root, 'pairs'), opts));
    writeFileSync(join(root, 'pairs', 'labels.json'), JSON.stringify({ description: 'two', classes: [['n01440764', 'tench'], ['n01443537', 'goldfish', 'goldfish, Carassius auratus']] }));
    const set = loadLabels(pairs);
    expect(set.size).toBe(2);
    expect(set.resolve('tench').long).toBe('tench');
    expect(set.resolve('Carassius auratus').wnid).toBe('n01443537');
  });
});
