import { defineConfig } from 'vitest/config';

// Real-model tests load MobileNet once per file; forks keep wasm instances isolated and
// two workers match CI's two cores.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
