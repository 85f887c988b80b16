/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import tailwindcss from '@tailwindcss/vite';
import { defineConfig } from 'vite';

// The gateway (python -m gateway) serves the API; in development Vite forwards to it so the
// app and the API share one origin, as they do when the gateway serves web/dist itself.
const gateway = process.env.LEARNFLOW_GATEWAY_URL ?? 'http://127.0.0.1:8080';
const proxy = Object.fromEntries(
  ['/v1', '/openapi.json', '/-/'].map((prefix) => [prefix, { target: gateway, changeOrigin: false }]),
);

export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: { port: 5173, strictPort: true, proxy },
  preview: { port: 4173, strictPort: true, proxy },
  build: {
    // The gateway's Content-Security-Policy forbids inline scripts and styles: never inline
    // assets as data: URLs either (fonts stay files under /assets).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    // scripts/budget.mjs follows the entry's static imports in it to measure the initial JS.
    manifest: true,
  },
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
    environment: 'node',
  },
});
