/**
 * Patch-attack metrics from a success matrix (placements × images), foolbox-style: the attack run
 * records raw predictions once, and every rate is derived here. Plain typed arrays, no tensors, so
 * results can be recomputed from a saved matrix.
 *
 * Definitions (Activation Atlas §"adversarial patches"): success = images that flip to the target ÷
 * images classified correctly before the patch; images wrong before count in neither. "static" is one
 * placement for all images, "dynamic" the best placement per image.
 */

export interface Proportion {
  /** Successes and trials behind the rate. */
  k: number;
  n: number;
  /** k / n (NaN when n = 0). */
  p: number;
  /** Wilson score interval (0..1 when n = 0). */
  lo: number;
  hi: number;
}

/**
 * Wilson score interval for a binomial proportion (Wilson 1927; Agresti & Coull 1998, eq. 2):
 *   centre = (p̂ + z²/2n) / (1 + z²/n),  half = z·√(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n),
 * with p̂ = k/n. Unlike the normal (Wald) interval it stays inside [0,1] and is not degenerate at
 * k = 0 or k = n, which matter here (noise patches flip almost nothing). n = 0 gives p = NaN, [0, 1].
 */
export function wilson(k: number, n: number, z = 1.96): { p: number; lo: number; hi: number } {
  if (!(Number.isInteger(k) && Number.isInteger(n) && k >= 0 && n >= 0 && k <= n)) throw new Error(`wilson: need whole numbers 0 ≤ k ≤ n, got k=${k} n=${n}`);
  if (n === 0) return { p: NaN, lo: 0, hi: 1 };
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // Exact ends at k = 0 and k = n (the formula gives them up to rounding).
  return { p, lo: k === 0 ? 0 : Math.max(0, centre - half), hi: k === n ? 1 : Math.min(1, centre + half) };
}

export function proportion(k: number, n: number, z = 1.96): Proportion {
  return { k, n, ...wilson(k, n, z) };
}

/** A mean with a normal-approximation interval (mean ± z·sd/√n); NaNs when n = 0. */
export interface MeanInterval {
  n: number;
  mean: number;
  lo: number;
  hi: number;
}

export function meanInterval(values: ArrayLike<number>, z = 1.96): MeanInterval {
  const n = values.length;
  if (n === 0) return { n, mean: NaN, lo: NaN, hi: NaN };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i]!;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i]! - mean) ** 2;
  const half = n > 1 ? z * Math.sqrt(ss / (n - 1) / n) : NaN;
  return { n, mean, lo: mean - half, hi: mean + half };
}

/**
 * Raw outcomes of one patch on a set of images. `pred` are model output indices (argmax over classes),
 * `pTarget` the target class's probability. `correct[i]` = clean prediction equals image i's source class.
 */
export interface SuccessMatrix {
  placements: string[];
  images: string[];
  /** Output index of the target class. */
  target: number;
  /** True class output index per image, -1 where unknown; the universal variant skips images of the target class. */
  label?: Int32Array;
  clean: { pred: Int32Array; correct: Uint8Array; pTarget: Float32Array };
  /** One entry per placement, in `placements` order. */
  patched: Array<{ pred: Int32Array; pTarget: Float32Array }>;
}

export interface TargetProbability {
  /** Means over the denominator images (correct before), before and after the patch. */
  before: number;
  after: number;
  /** Mean of after − before per image, with its interval. */
  change: MeanInterval;
}

export interface PlacementMetrics {
  placement: string;
  /** Correct before and now the target ÷ correct before. */
  targeted: Proportion;
  /** Correct before and now anything else ÷ correct before. */
  untargeted: Proportion;
  /** Not the target before (nor labelled it) and now the target ÷ such images. */
  universal: Proportion;
  pTarget: TargetProbability;
}

export interface PatchMetrics {
  images: number;
  /** Denominator of targeted/untargeted rates. */
  correctBefore: number;
  /** Denominator of universal rates. */
  notTargetBefore: number;
  placements: PlacementMetrics[];
  /** The single placement with the highest targeted success (first in order on ties). */
  static: { placement: string; targeted: Proportion; untargeted: Proportion; pTarget: TargetProbability };
  /** An image counts if any placement flips it; target probability after = its best placement's. */
  dynamic: { targeted: Proportion; untargeted: Proportion; universal: Proportion; pTarget: TargetProbability };
  /** Universal success: best single placement and best per image. */
  universal: { static: { placement: string; rate: Proportion }; dynamic: Proportion };
}

/** Shape and consistency checks; a mismatch is a bug in whoever built the matrix. */
export function checkMatrix(m: SuccessMatrix): void {
  const n = m.images.length;
  const bad = (what: string) => {
    throw new Error(`success matrix: ${what}`);
  };
  if (m.patched.length !== m.placements.length) bad(`${m.patched.length} patched rows for ${m.placements.length} placements`);
  if (new Set(m.placements).size !== m.placements.length) bad('placement ids are not unique');
  for (const [name, a] of [['clean.pred', m.clean.pred], ['clean.correct', m.clean.correct], ['clean.pTarget', m.clean.pTarget], ['label', m.label ?? m.clean.pred]] as const) {
    if (a.length !== n) bad(`${name} has ${a.length} entries for ${n} images`);
  }
  m.patched.forEach((row, j) => {
    if (row.pred.length !== n || row.pTarget.length !== n) bad(`placement ${m.placements[j]} has ${row.pred.length} predictions for ${n} images`);
  });
  for (let i = 0; i < n; i++) {
    // Correct and predicted as the target means source = target: every unchanged image would "succeed".
    if (m.clean.correct[i] && m.clean.pred[i] === m.target) bad(`image ${m.images[i]} is counted correct but predicted as the target: the source class must differ from the target`);
  }
}

/** Per image: 1 where placement j turns a correctly classified image into the target. */
export function targetedFlips(m: SuccessMatrix, j: number): Uint8Array {
  const { pred } = m.patched[j]!;
  return Uint8Array.from(m.clean.correct, (c, i) => (c && pred[i] === m.target ? 1 : 0));
}

/** Per image: 1 where placement j moves a correctly classified image off its class. */
export function untargetedFlips(m: SuccessMatrix, j: number): Uint8Array {
  const { pred } = m.patched[j]!;
  return Uint8Array.from(m.clean.correct, (c, i) => (c && pred[i] !== m.clean.pred[i] ? 1 : 0));
}

/** Per image: 1 where the image may count for universal success (not the target before, nor labelled it). */
export function universalEligible(m: SuccessMatrix): Uint8Array {
  return Uint8Array.from(m.clean.pred, (p, i) => (p !== m.target && (m.label?.[i] ?? -1) !== m.target ? 1 : 0));
}

export function patchMetrics(m: SuccessMatrix, z = 1.96): PatchMetrics {
  checkMatrix(m);
  const n = m.images.length;
  const correct = m.clean.correct;
  const eligible = universalEligible(m);
  const nCorrect = count(correct);
  const nEligible = count(eligible);
  const anyTargeted = new Uint8Array(n);
  const anyUntargeted = new Uint8Array(n);
  const anyUniversal = new Uint8Array(n);
  const bestP = new Float32Array(n).fill(-Infinity);

  const placements = m.placements.map((id, j): PlacementMetrics => {
    const row = m.patched[j]!;
    const t = targetedFlips(m, j);
    const u = untargetedFlips(m, j);
    let kUni = 0;
    for (let i = 0; i < n; i++) {
      anyTargeted[i] ||= t[i]!;
      anyUntargeted[i] ||= u[i]!;
      if (eligible[i] && row.pred[i] === m.target) {
        kUni++;
        anyUniversal[i] = 1;
      }
      bestP[i] = Math.max(bestP[i]!, row.pTarget[i]!);
    }
    return {
      placement: id,
      targeted: proportion(count(t), nCorrect, z),
      untargeted: proportion(count(u), nCorrect, z),
      universal: proportion(kUni, nEligible, z),
      pTarget: targetProbability(m.clean.pTarget, row.pTarget, correct, z),
    };
  });

  const best = argBest(placements.map((p) => p.targeted.k));
  const bestUni = argBest(placements.map((p) => p.universal.k));
  const none = proportion(0, nCorrect, z);
  return {
    images: n,
    correctBefore: nCorrect,
    notTargetBefore: nEligible,
    placements,
    static: placements[best]
      ? { placement: placements[best].placement, targeted: placements[best].targeted, untargeted: placements[best].untargeted, pTarget: placements[best].pTarget }
      : { placement: '', targeted: none, untargeted: none, pTarget: targetProbability(m.clean.pTarget, m.clean.pTarget, correct, z) },
    dynamic: {
      targeted: proportion(count(anyTargeted), nCorrect, z),
      untargeted: proportion(count(anyUntargeted), nCorrect, z),
      universal: proportion(count(anyUniversal), nEligible, z),
      pTarget: targetProbability(m.clean.pTarget, placements.length ? bestP : m.clean.pTarget, correct, z),
    },
    universal: {
      static: placements[bestUni] ? { placement: placements[bestUni].placement, rate: placements[bestUni].universal } : { placement: '', rate: proportion(0, nEligible, z) },
      dynamic: proportion(count(anyUniversal), nEligible, z),
    },
  };
}

function targetProbability(before: Float32Array, after: ArrayLike<number>, include: Uint8Array, z: number): TargetProbability {
  const deltas: number[] = [];
  let b = 0;
  let a = 0;
  for (let i = 0; i < include.length; i++) {
    if (!include[i]) continue;
    b += before[i]!;
    a += after[i]!;
    deltas.push(after[i]! - before[i]!);
  }
  const k = deltas.length;
  return { before: k ? b / k : NaN, after: k ? a / k : NaN, change: meanInterval(deltas, z) };
}

function count(flags: Uint8Array): number {
  let c = 0;
  for (const f of flags) c += f;
  return c;
}

/** Index of the largest value, the first on ties; -1 for none. */
function argBest(values: number[]): number {
  let best = -1;
  values.forEach((v, i) => {
    if (best < 0 || v > values[best]!) best = i;
  });
  return best;
}
