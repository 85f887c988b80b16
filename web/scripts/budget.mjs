#!/usr/bin/env node
// Bundle budget: the JavaScript a first visit loads (the entry chunk and everything it imports
// statically, per dist/.vite/manifest.json), gzipped, must stay within the budget. Lazy route
// chunks are not counted: they load when their page is visited.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const BUDGET_KB = Number(process.env.WEB_BUDGET_KB ?? 200);
const dist = new URL('../dist/', import.meta.url).pathname;
const manifestPath = join(dist, '.vite', 'manifest.json');
if (!existsSync(manifestPath)) {
  console.error(`budget: ${manifestPath} is missing: run 'make web' (npm run build) first`);
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const entries = Object.entries(manifest).filter(([, chunk]) => chunk.isEntry);
const seen = new Set();
const walk = (key) => {
  if (seen.has(key)) return;
  seen.add(key);
  for (const imported of manifest[key]?.imports ?? []) walk(imported);
};
for (const [key] of entries) walk(key);

let total = 0;
for (const key of [...seen].sort()) {
  const file = manifest[key].file;
  const size = gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
  total += size;
  console.log(`  ${(size / 1024).toFixed(1).padStart(7)} KB  ${file}`);
}
const kb = total / 1024;
console.log(`initial JS: ${kb.toFixed(1)} KB gzipped (budget ${BUDGET_KB} KB)`);
if (kb > BUDGET_KB) {
  console.error('budget: the initial JavaScript is over budget; lazy-load something');
  process.exit(1);
}
