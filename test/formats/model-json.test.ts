import { describe, expect, it } from 'vitest';
import { isPatchAtlasError } from '../../src/errors.js';
import { isPlainFileName, parseModelJson } from '../../src/formats/model-json.js';

/** A tfjs model.json is checked before its shard paths are used: one line naming the file and the first bad key. */
const ok = {
  format: 'layers-model',
  generatedBy: 'keras v2.1.4',
  convertedBy: null,
  modelTopology: { class_name: 'Model' },
  somethingNewer: 1,
  weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: [{ name: 'w', shape: [1, 2], dtype: 'float32', group: 'x', quantization: { dtype: 'uint8', scale: 1, min: 0 } }] }],
};
const withPaths = (...paths: unknown[]) => JSON.stringify({ ...ok, weightsManifest: [{ paths, weights: [] }] });

function failure(text: string): string {
  try {
    parseModelJson(text, 'http://h/m/model.json', 'DOWNLOAD_FAILED');
  } catch (e) {
    expect(isPatchAtlasError(e) && e.code).toBe('DOWNLOAD_FAILED');
    const msg = (e as Error).message;
    expect(msg.split('\n')).toHaveLength(1);
    return msg;
  }
  throw new Error('no error');
}

describe('parseModelJson', () => {
  it('reads a tfjs model.json, keeping keys it does not know', () => {
    const m = parseModelJson(JSON.stringify(ok), 'model.json', 'WEIGHTS_INVALID');
    expect(m.weightsManifest[0]!.paths).toEqual(['group1-shard1of1.bin']);
    expect(m.weightsManifest[0]!.weights[0]).toMatchObject({ shape: [1, 2], group: 'x', quantization: { dtype: 'uint8', scale: 1 } });
    expect(m).toMatchObject({ somethingNewer: 1, modelTopology: { class_name: 'Model' } });
  });

  it('refuses shard paths that are not plain file names, naming the entry', () => {
    expect(failure(withPaths('a.bin', '../x'))).toBe('http://h/m/model.json is not a tfjs model.json: weightsManifest[0].paths[1] "../x" is not a plain file name');
    expect(failure(withPaths('a/b'))).toMatch(/paths\[0\] "a\/b" is not a plain file name$/);
    expect(failure(withPaths('..'))).toMatch(/paths\[0\] "\.\." is not a plain file name$/);
    expect(failure(withPaths('.'))).toMatch(/paths\[0\] "\." is not a plain file name$/);
    expect(failure(withPaths('a\\b'))).toMatch(/paths\[0\] "a\\\\b" is not a plain file name$/);
    expect(failure(withPaths(''))).toMatch(/paths\[0\] "" is not a plain file name$/);
    expect(failure(withPaths('/etc/passwd'))).toMatch(/paths\[0\] "\/etc\/passwd" is not a plain file name$/);
    expect(failure(withPaths('a\0b'))).toMatch(/paths\[0\] "a\\u0000b" is not a plain file name$/);
    expect(failure(withPaths(3))).toMatch(/paths\[0\] must be a file name$/);
    expect(['a.bin', 'group1-shard1of4', '..a', 'a..'].every(isPlainFileName)).toBe(true);
  });

  it('names the first missing or bad key', () => {
    const spec = (w: object) => JSON.stringify({ ...ok, weightsManifest: [{ paths: ['a'], weights: [{ name: 'w', dtype: 'float32', ...w }] }] });
    expect(failure(spec({ shape: [1.5] }))).toMatch(/: weightsManifest\[0\]\.weights\[0\]\.shape\[0\] must be a whole number$/);
    expect(failure(spec({ shape: [-1] }))).toMatch(/: weightsManifest\[0\]\.weights\[0\]\.shape\[0\] must not be negative$/);
    expect(failure(spec({}))).toMatch(/: weightsManifest\[0\]\.weights\[0\]\.shape is missing$/);
    expect(failure(JSON.stringify({ ...ok, modelTopology: null }))).toMatch(/: modelTopology must be an object$/);
    expect(failure(JSON.stringify({ ...ok, modelTopology: undefined }))).toMatch(/: modelTopology is missing$/);
    expect(failure(JSON.stringify({ ...ok, weightsManifest: undefined }))).toMatch(/: weightsManifest is missing$/);
    expect(failure('[1]')).toMatch(/model\.json is not a tfjs model\.json: the file must be a JSON object$/);
  });

  it('says where JSON breaks', () => {
    expect(failure('<html>\n<body>')).toMatch(/^http:\/\/h\/m\/model\.json is not a tfjs model\.json: not valid JSON \(.*line 1, column 1\)$/);
    expect(failure('{"modelTopology": {},\n "weightsManifest": [}')).toMatch(/not valid JSON \(.*line 2, column 22\)$/);
  });
});
