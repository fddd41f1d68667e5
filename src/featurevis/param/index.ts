export { pixel, variableFrom, type InitOptions, type Param } from './param.js';
export { dftMatrices, dftTensors, fourier, fourierNorm, irfft2d, irfft2dWith, rfftWidth, spectrumScale, type DftTensors, type FourierOptions } from './fourier.js';
export { clipToRgb, COLOR_CORRELATION_SVD_SQRT, COLOR_MEAN, decorrelate, decorrelateColors, decorrelationMatrix, sigmoid } from './color.js';
export { image, type ImageOptions } from './image.js';
