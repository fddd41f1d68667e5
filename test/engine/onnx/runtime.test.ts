import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../../src/engine/index.js';
import { fixtureBytes, fixtureInput, reference, relError, values } from './fixtures.js';

/** SyncSession: onnxruntime-node's native binding, whose run returns synchronously (native gradients need it). */
beforeAll(async () => {
  await initBackend('wasm');
});
afterEach(() => {
  vi.doUnmock('node:module');
  vi.resetModules();
});

describe('SyncSession', () => {
  it('runs a model synchronously and gives what PyTorch gives', async () => {
    const { SyncSession, sessionOptions } = await import('../../../src/engine/onnx/runtime.js');
    const ref = reference('ops');
    const s = SyncSession.open(fixtureBytes('ops'), sessionOptions(1));
    const x = fixtureInput(ref.input.shape);
    const out = s.run({ [ref.input.name]: { data: x.dataSync() as Float32Array, dims: x.shape } }, ['logits']);
    expect(out.logits!.dims).toEqual(ref.outputs.logits!.shape);
    expect(relError(out.logits!.data, values(ref, ref.outputs.logits!))).toBeLessThan(1e-4);
    x.dispose();
    s.dispose();
  });

  it('says what is missing, as an engine error, where the binding cannot be loaded', async () => {
    vi.doMock('node:module', async (orig) => ({
      ...(await orig<typeof import('node:module')>()),
      createRequire: () => () => {
        throw new Error("Cannot find module 'onnxruntime-node/dist/binding.js'");
      },
    }));
    const { SyncSession, sessionOptions } = await import('../../../src/engine/onnx/runtime.js');
    expect(() => SyncSession.open(fixtureBytes('ops'), sessionOptions(1))).toThrow(expect.objectContaining({ code: 'BACKEND_MISSING', message: expect.stringMatching(/no dist\/binding\.js/) }));
  });
});
