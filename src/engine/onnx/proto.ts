import protobuf from 'protobufjs';

/**
 * The part of the ONNX protobuf schema patch-atlas reads and writes (models, graphs, nodes, attributes,
 * tensors, value infos). Field numbers and types are those of onnx/onnx.proto (proto2, IR version 8); fields
 * left out (training info, sparse tensors, functions) are skipped by the decoder.
 */
type FieldDef = { type: string; id: number; rule?: 'repeated'; options?: { packed: boolean } };
const one = (type: string, id: number): FieldDef => ({ type, id });
const many = (type: string, id: number, packed = false): FieldDef => ({ type, id, rule: 'repeated', ...(packed ? { options: { packed: true } } : {}) });

const schema = {
  nested: {
    onnx: {
      nested: {
        StringStringEntryProto: { fields: { key: one('string', 1), value: one('string', 2) } },
        OperatorSetIdProto: { fields: { domain: one('string', 1), version: one('int64', 2) } },
        TensorShapeProto: {
          fields: { dim: many('Dimension', 1) },
          nested: { Dimension: { fields: { dim_value: one('int64', 1), dim_param: one('string', 2), denotation: one('string', 3) } } },
        },
        TypeProto: {
          fields: { tensor_type: one('TensorTypeProto', 1), denotation: one('string', 6) },
        },
        TensorTypeProto: { fields: { elem_type: one('int32', 1), shape: one('TensorShapeProto', 2) } },
        ValueInfoProto: { fields: { name: one('string', 1), type: one('TypeProto', 2), doc_string: one('string', 3) } },
        TensorProto: {
          fields: {
            dims: many('int64', 1),
            data_type: one('int32', 2),
            float_data: many('float', 4, true),
            int32_data: many('int32', 5, true),
            string_data: many('bytes', 6),
            int64_data: many('int64', 7, true),
            name: one('string', 8),
            raw_data: one('bytes', 9),
            double_data: many('double', 10, true),
            uint64_data: many('uint64', 11, true),
            doc_string: one('string', 12),
            external_data: many('StringStringEntryProto', 13),
            data_location: one('int32', 14),
          },
        },
        AttributeProto: {
          fields: {
            name: one('string', 1),
            f: one('float', 2),
            i: one('int64', 3),
            s: one('bytes', 4),
            t: one('TensorProto', 5),
            g: one('GraphProto', 6),
            floats: many('float', 7),
            ints: many('int64', 8),
            strings: many('bytes', 9),
            tensors: many('TensorProto', 10),
            graphs: many('GraphProto', 11),
            doc_string: one('string', 13),
            type: one('int32', 20),
            ref_attr_name: one('string', 21),
          },
        },
        NodeProto: {
          fields: {
            input: many('string', 1),
            output: many('string', 2),
            name: one('string', 3),
            op_type: one('string', 4),
            attribute: many('AttributeProto', 5),
            doc_string: one('string', 6),
            domain: one('string', 7),
          },
        },
        GraphProto: {
          fields: {
            node: many('NodeProto', 1),
            name: one('string', 2),
            initializer: many('TensorProto', 5),
            doc_string: one('string', 10),
            input: many('ValueInfoProto', 11),
            output: many('ValueInfoProto', 12),
            value_info: many('ValueInfoProto', 13),
          },
        },
        ModelProto: {
          fields: {
            ir_version: one('int64', 1),
            producer_name: one('string', 2),
            producer_version: one('string', 3),
            domain: one('string', 4),
            model_version: one('int64', 5),
            doc_string: one('string', 6),
            graph: one('GraphProto', 7),
            opset_import: many('OperatorSetIdProto', 8),
            metadata_props: many('StringStringEntryProto', 14),
          },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(schema);
const Model = root.lookupType('onnx.ModelProto');

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11 } as const;
/** AttributeProto.AttributeType values used here. */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

export interface TensorProto {
  dims?: number[];
  data_type?: number;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: number[];
  double_data?: number[];
  uint64_data?: number[];
  name?: string;
  raw_data?: Uint8Array;
  external_data?: Array<{ key: string; value: string }>;
  data_location?: number;
}
export interface AttributeProto {
  name: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  /** A subgraph (If, Loop, Scan): read only to know one is there. */
  g?: GraphProto;
  graphs?: GraphProto[];
}
export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute?: AttributeProto[];
}
export interface ValueInfoProto {
  name: string;
  type?: { tensor_type?: { elem_type?: number; shape?: { dim?: Array<{ dim_value?: number; dim_param?: string }> } } };
}
export interface GraphProto {
  name?: string;
  node?: NodeProto[];
  initializer?: TensorProto[];
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  value_info?: ValueInfoProto[];
}
export interface ModelProto {
  ir_version?: number;
  producer_name?: string;
  producer_version?: string;
  graph?: GraphProto;
  opset_import?: Array<{ domain?: string; version?: number }>;
  metadata_props?: Array<{ key: string; value: string }>;
}

/** Decode a serialised ModelProto (64-bit integers become numbers; shapes and attributes fit in 2^53). */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const msg = Model.decode(bytes);
  return Model.toObject(msg, { longs: Number, arrays: true, defaults: false }) as ModelProto;
}

/** Serialise a ModelProto. */
export function encodeModel(model: ModelProto): Uint8Array {
  const err = Model.verify(model);
  if (err) throw new Error(`invalid ONNX model: ${err}`);
  return Model.encode(Model.fromObject(model)).finish();
}

/** Attributes of the graphs patch-atlas writes (the layers exporter, the graph converter, backward graphs). */
export const attr = {
  int: (name: string, i: number): AttributeProto => ({ name, type: AttrType.INT, i }),
  ints: (name: string, ints: number[]): AttributeProto => ({ name, type: AttrType.INTS, ints }),
  float: (name: string, f: number): AttributeProto => ({ name, type: AttrType.FLOAT, f }),
  string: (name: string, s: string): AttributeProto => ({ name, type: AttrType.STRING, s: new TextEncoder().encode(s) }),
};

/** A float32 initializer. */
export function floatTensor(name: string, values: ArrayLike<number>, dims: number[]): TensorProto {
  return { name, dims, data_type: DataType.FLOAT, raw_data: new Uint8Array(Float32Array.from(values).buffer) };
}

/** An int64 initializer (values rounded; shapes, axes, pads). */
export function int64Tensor(name: string, values: ArrayLike<number>, dims: number[] = [values.length]): TensorProto {
  return { name, dims, data_type: DataType.INT64, raw_data: new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(Math.round(v)))).buffer) };
}

