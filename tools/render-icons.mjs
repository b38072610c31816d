// Renders www/icon.svg as the manifest's PNG icons (www/icon-192.png,
// www/icon-512.png) with Debian's Chromium, through the browser tests'
// playwright-core. Run it after changing the SVG; the PNGs are committed.
//
//   node tools/render-icons.mjs

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { chromium } = createRequire(path.join(ROOT, 'tests/browser/package.json'))('playwright-core');

const svg = await readFile(path.join(ROOT, 'www/icon.svg'), 'utf8');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  for (const size of [192, 512]) {
    const page = await browser.newPage({ viewport: { width: size, height: size } });
    await page.setContent(`<style>html,body{margin:0;background:transparent}svg{display:block;width:${size}px;height:${size}px}</style>${svg}`);
    const file = path.join(ROOT, `www/icon-${size}.png`);
    await page.screenshot({ path: file, omitBackground: true });
    console.log(`wrote ${path.relative(ROOT, file)}`);
    await page.close();
  }
} finally {
  await browser.close();
}
