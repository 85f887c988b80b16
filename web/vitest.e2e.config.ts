// The end-to-end specs (web/e2e) drive Chromium with playwright-core against E2E_BASE_URL.
// Run by tests/test_web_e2e.py, which starts the backend, the gateway and the app first.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    environment: 'node',
    testTimeout: 90_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
