import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, expect, it } from 'vitest';
import { installGradientFixes } from '../../src/engine/gradients/index.js';
import { describeReal, REAL_MODEL_DIR } from '../helpers/real.js';

/**
 * The real MobileNet v1 (depthwise convs with stride 2, BN, relu6, a fused linear conv for the logits): its input
 * gradient on wasm — which throws without the fixes — against the cpu backend. The layers are re-applied to a
 * 64×64 input so that the pure-JS cpu reference stays a few seconds (the net is a plain chain, so any size works).
 */

installGradientFixes();

interface LayersJson {
  modelTopology: unknown;
  weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
}

async function loadMobileNet(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as LayersJson;
  const bytes = Buffer.concat(json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dir, p)))));
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'], weightSpecs: json.weightsManifest.flatMap((g) => g.weights), weightData }),
  );
}

/** The same layers (shared weights) from a `size`×`size` input up to the pre-softmax logits. */
function logitsAt(model: tf.LayersModel, size: number): tf.LayersModel {
  const input = tf.input({ shape: [size, size, 3] });
  let t: tf.SymbolicTensor = input;
  for (const layer of model.layers.slice(1)) {
    t = layer.apply(t) as tf.SymbolicTensor;
    if (layer.name === 'conv_preds') break;
  }
  return tf.model({ inputs: input, outputs: t });
}

const SIZE = 64;
const CLASS = 409; // any logit will do
const xData = Float32Array.from({ length: SIZE * SIZE * 3 }, (_, i) => Math.sin(i * 0.37));

function logitGrad(net: tf.LayersModel): Float32Array {
  const x = tf.tensor4d(xData, [1, SIZE, SIZE, 3]);
  const before = tf.memory().numTensors;
  const g = tf.grad((v: tf.Tensor) => (net.apply(v) as tf.Tensor).reshape([-1]).slice([CLASS], [1]).sum() as tf.Scalar)(x);
  const out = Float32Array.from(g.dataSync());
  g.dispose();
  expect(tf.memory().numTensors).toBe(before);
  x.dispose();
  return out;
}

describeReal('MobileNet v1 input gradients', () => {
  let model: tf.LayersModel;
  beforeAll(async () => {
    await tf.setBackend('wasm');
    model = await loadMobileNet(REAL_MODEL_DIR!);
  });

  it('wasm matches cpu (rel err < 1e-4) for one logit', async () => {
    const net = logitsAt(model, SIZE);
    await tf.setBackend('cpu');
    const want = logitGrad(net);
    await tf.setBackend('wasm');
    const got = logitGrad(net);
    let diff = 0;
    let scale = 0;
    want.forEach((w, i) => {
      diff = Math.max(diff, Math.abs(got[i] - w));
      scale = Math.max(scale, Math.abs(w));
    });
    console.log(`MobileNet ${SIZE}px logit ${CLASS}: wasm vs cpu input-gradient rel err ${(diff / scale).toExponential(2)}`);
    expect(scale).toBeGreaterThan(0);
    expect(diff / scale).toBeLessThan(1e-4);
  });
});
