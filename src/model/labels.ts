import { PatchAtlasError } from '../errors.js';
import type { LabelFile } from '../formats/labels.js';
import { closest } from '../util/suggest.js';

/** One class of a model's label set. `index` is the position in the model's own output vector. */
export interface ClassRef {
  index: number;
  wnid: string;
  name: string;
  long: string;
}

export type { LabelFile };

const norm = (s: string) => s.trim().toLowerCase().replace(/[\s_\-]+/g, ' ');
const WNID = /^n\d{8}$/;

/**
 * A model's classes, addressed by WordNet id or name, never by a bare index copied from elsewhere.
 * `offset` is how many leading outputs are not classes (1 for TF-Hub's background class).
 */
export class LabelSet {
  readonly classes: readonly ClassRef[];
  readonly offset: number;
  readonly outputs: number;
  private readonly byWnid = new Map<string, ClassRef>();
  private readonly byName = new Map<string, ClassRef[]>();
  private readonly bySynonym = new Map<string, ClassRef[]>();

  constructor(file: LabelFile, offset = 0) {
    this.offset = offset;
    this.classes = file.classes.map(([wnid, name, long], i) => ({ index: i + offset, wnid, name, long: long || name }));
    this.outputs = this.classes.length + offset;
    for (const c of this.classes) {
      this.byWnid.set(c.wnid, c);
      push(this.byName, norm(c.name), c);
      for (const syn of c.long.split(',')) push(this.bySynonym, norm(syn), c);
    }
  }

  get size(): number {
    return this.classes.length;
  }

  /** The class at a model output index (undefined for the background slot). */
  atOutput(outputIndex: number): ClassRef | undefined {
    return this.classes[outputIndex - this.offset];
  }

  /** Like resolve, but undefined instead of an error: for labels inferred from file names. */
  tryResolve(query: string): ClassRef | undefined {
    const q = query.trim();
    if (WNID.test(q)) return this.byWnid.get(q);
    const n = norm(q);
    const byName = this.byName.get(n);
    if (byName?.length === 1) return byName[0];
    if (byName && byName.length > 1) return undefined;
    const bySyn = this.bySynonym.get(n);
    return bySyn?.length === 1 ? bySyn[0] : undefined;
  }

  /** "grey whale", "grey_whale", "n02066245" or a unique synonym; a one-line error with suggestions otherwise. */
  resolve(query: string, what = 'class'): ClassRef {
    const hit = this.tryResolve(query);
    if (hit) return hit;
    const n = norm(query);
    const many = this.byName.get(n) ?? this.bySynonym.get(n);
    if (many && many.length > 1) {
      throw new PatchAtlasError(
        'UNKNOWN_CLASS',
        `${what} "${query}" is ambiguous in label set of ${this.size} classes`,
        `use a WordNet id: ${many.map((c) => `${c.wnid} (${c.long})`).join(' or ')}`,
      );
    }
    const names = [...this.byName.keys(), ...this.byWnid.keys()];
    const sugg = closest(n, names, 3).map((s) => (WNID.test(s) ? s : this.byName.get(s)![0]!.name));
    throw new PatchAtlasError(
      'UNKNOWN_CLASS',
      `unknown ${what} "${query}"`,
      sugg.length ? `closest: ${sugg.map((s) => `"${s.replace(/_/g, ' ')}"`).join(', ')}` : 'give a WordNet id (e.g. n02066245) or a class name',
    );
  }

  /** Human-readable class name ("grey whale"). */
  static display(c: ClassRef): string {
    return c.name.replace(/_/g, ' ');
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V) {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}
