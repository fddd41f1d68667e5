import * as tf from '@tensorflow/tfjs';
import type { WindowGeometry } from './spatial.js';

/** Translate tfjs's own shape bookkeeping (conv_util) into `WindowGeometry`, so padding rules stay exactly tfjs's. */

type Pad = tf.DepthwiseConv2dNativeAttrs['pad'];
type Rounding = 'floor' | 'round' | 'ceil' | undefined;
type Shape4 = [number, number, number, number];
type Shape5 = [number, number, number, number, number];

function fromConv2DInfo(info: tf.backend_util.Conv2DInfo): WindowGeometry {
  return {
    window: [info.effectiveFilterHeight, info.effectiveFilterWidth],
    dilation: [info.dilationHeight, info.dilationWidth],
    strides: [info.strideHeight, info.strideWidth],
    padBefore: [info.padInfo.top, info.padInfo.left],
    inSize: [info.inHeight, info.inWidth],
    outSize: [info.outHeight, info.outWidth],
  };
}

export function convGeometry(
  xShape: number[],
  filterShape: number[],
  strides: number | [number, number],
  dilations: number | [number, number],
  pad: Pad,
  dimRoundingMode: Rounding,
  depthwise: boolean,
): WindowGeometry {
  return fromConv2DInfo(
    tf.backend_util.computeConv2DInfo(xShape as Shape4, filterShape as Shape4, strides, dilations, pad, dimRoundingMode, depthwise),
  );
}

export function pool2DGeometry(
  xShape: number[],
  filterSize: number | [number, number],
  strides: number | [number, number],
  pad: Pad,
  dimRoundingMode: Rounding,
): WindowGeometry {
  return fromConv2DInfo(tf.backend_util.computePool2DInfo(xShape as Shape4, filterSize, strides, 1, pad, dimRoundingMode));
}

export function pool3DGeometry(
  xShape: number[],
  filterSize: number | [number, number, number],
  strides: number | [number, number, number],
  pad: 'valid' | 'same' | number,
  dimRoundingMode: Rounding,
): WindowGeometry {
  const info = tf.backend_util.computePool3DInfo(xShape as Shape5, filterSize, strides, 1, pad, dimRoundingMode);
  return {
    window: [info.effectiveFilterDepth, info.effectiveFilterHeight, info.effectiveFilterWidth],
    dilation: [info.dilationDepth, info.dilationHeight, info.dilationWidth],
    strides: [info.strideDepth, info.strideHeight, info.strideWidth],
    padBefore: [info.padInfo.front, info.padInfo.top, info.padInfo.left],
    inSize: [info.inDepth, info.inHeight, info.inWidth],
    outSize: [info.outDepth, info.outHeight, info.outWidth],
  };
}
