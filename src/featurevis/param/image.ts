import { clipToRgb, decorrelate, sigmoid } from './color.js';
import { fourier } from './fourier.js';
import { pixel, type InitOptions, type Param } from './param.js';

export interface ImageOptions extends InitOptions {
  /** Fourier parameterisation (default true); false uses plain pixels. */
  fft?: boolean;
  /** ImageNet colour decorrelation (default true). */
  decorrelate?: boolean;
  /** Sigmoid into (0,1) (default true); false adds the mean colour and clips. */
  sigmoid?: boolean;
  /** 1/frequency exponent of the Fourier parameterisation (default 1). */
  decay?: number;
}

/** Lucid's `image()`: Fourier spectrum → decorrelated colours → sigmoid, [B,H,W,3] in (0,1). */
export function image(b: number, h: number, w: number, opts: ImageOptions = {}): Param {
  const init = { ...(opts.sd !== undefined ? { sd: opts.sd } : {}), ...(opts.seed !== undefined ? { seed: opts.seed } : {}) };
  let p = opts.fft === false ? pixel(b, h, w, init) : fourier(b, h, w, { ...init, ...(opts.decay !== undefined ? { decay: opts.decay } : {}) });
  const decor = opts.decorrelate !== false;
  if (decor) p = decorrelate(p);
  return opts.sigmoid === false ? clipToRgb(p, decor) : sigmoid(p);
}
