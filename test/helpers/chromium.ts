/** Opens a local HTML file in Debian's headless chromium, the way a person's browser would parse and draw it. */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runProcess, type CliResult } from './cli.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface ChromiumPage {
  /** The DOM after parsing, serialised (--dump-dom). */
  dom: string;
  /** Lines the page logged to the console (errors included), from chromium's own log. */
  console: string[];
  /** Bytes of the screenshot chromium drew. */
  screenshotBytes: number;
}

function chromium(args: string[]): Promise<CliResult> {
  // As root in a container chromium needs --no-sandbox; a fresh profile keeps runs independent.
  return runProcess(CHROMIUM, ['--headless=new', '--no-sandbox', '--disable-gpu', '--enable-logging=stderr', '--v=0', ...args]);
}

export async function openInChromium(file: string): Promise<ChromiumPage> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-chromium-'));
  try {
    const url = pathToFileURL(file).href;
    const dumped = await chromium([`--user-data-dir=${profile}`, '--dump-dom', url]);
    if (dumped.code !== 0) throw new Error(`chromium --dump-dom exited with ${dumped.code}: ${dumped.stderr.slice(-2000)}`);
    const png = path.join(profile, 'page.png');
    const drawn = await chromium([`--user-data-dir=${profile}`, '--window-size=1280,2000', `--screenshot=${png}`, url]);
    if (drawn.code !== 0) throw new Error(`chromium --screenshot exited with ${drawn.code}: ${drawn.stderr.slice(-2000)}`);
    const console = `${dumped.stderr}\n${drawn.stderr}`.split('\n').filter((l) => /:CONSOLE[:(]/.test(l));
    return { dom: dumped.stdout, console, screenshotBytes: (await stat(png)).size };
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}
