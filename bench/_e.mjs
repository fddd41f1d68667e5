import { Classifier } from '../dist/src/model/classifier.js';
import { tf, OrtForward } from '../dist/src/engine/index.js';
const c = await Classifier.load({ backend: 'wasm' });
const exec = c.exec;
let t0 = performance.now();
const { bytes, input } = exec.toOnnx();
console.log('export ms', (performance.now() - t0).toFixed(0), 'bytes', bytes.length);
const s = await OrtForward.create(bytes, input, ['conv_preds']);
const x = tf.randomUniform([8, 224, 224, 3]);
const want = c.logits(x).dataSync();
const nchw = tf.transpose(c.toModelInput(x), [0, 3, 1, 2]);
const [got] = await s.run(nchw.dataSync(), nchw.shape);
let m = 0, d = 0; for (let i = 0; i < want.length; i++) { m = Math.max(m, Math.abs(want[i] - got[i])); d = Math.max(d, Math.abs(want[i])); }
console.log('rel err', m / d, got.length);
const time = async (f, n = 5) => { await f(); const t = performance.now(); for (let i = 0; i < n; i++) await f(); return (performance.now() - t) / n; };
console.log('ort img/s', 8000 / await time(() => s.run(nchw.dataSync(), nchw.shape)));
console.log('wasm img/s', 8000 / await time(async () => c.logits(x).dataSync()));
