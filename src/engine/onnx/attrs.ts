import { EngineError } from '../errors.js';
import { AttrType, type AttributeProto, type TensorProto } from './proto.js';

/** A node's attributes, read with defaults; a wrong type is one line naming the node and the attribute. */
export class Attrs {
  private readonly byName: Map<string, AttributeProto>;
  constructor(list: readonly AttributeProto[] | undefined, private readonly where: string) {
    this.byName = new Map((list ?? []).map((a) => [a.name, a]));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  int(name: string, fallback: number): number {
    const a = this.byName.get(name);
    if (!a) return fallback;
    if (a.type !== undefined && a.type !== AttrType.INT) this.bad(name, 'an integer');
    return Number(a.i ?? 0);
  }

  float(name: string, fallback: number): number {
    const a = this.byName.get(name);
    if (!a) return fallback;
    if (a.type !== undefined && a.type !== AttrType.FLOAT) this.bad(name, 'a float');
    return a.f ?? 0;
  }

  ints(name: string): number[] | undefined {
    const a = this.byName.get(name);
    if (!a) return undefined;
    if (a.type !== undefined && a.type !== AttrType.INTS) this.bad(name, 'a list of integers');
    return (a.ints ?? []).map(Number);
  }

  floats(name: string): number[] | undefined {
    const a = this.byName.get(name);
    if (!a) return undefined;
    if (a.type !== undefined && a.type !== AttrType.FLOATS) this.bad(name, 'a list of floats');
    return a.floats ?? [];
  }

  string(name: string, fallback: string): string {
    const a = this.byName.get(name);
    if (!a) return fallback;
    if (a.type !== undefined && a.type !== AttrType.STRING) this.bad(name, 'a string');
    return new TextDecoder().decode(a.s ?? new Uint8Array());
  }

  tensor(name: string): TensorProto | undefined {
    const a = this.byName.get(name);
    if (!a) return undefined;
    if (a.type !== undefined && a.type !== AttrType.TENSOR) this.bad(name, 'a tensor');
    return a.t;
  }

  private bad(name: string, want: string): never {
    throw new EngineError('MODEL_INVALID', `${this.where}: attribute "${name}" must be ${want}`);
  }
}
