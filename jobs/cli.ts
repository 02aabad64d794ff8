/** The `nextbuy` command's entry: parse, run the task, map errors to exit codes with a message a user can act on. */
import { NextbuyError, UsageError } from '../core/errors.js';
import { setLogFormat } from '../core/log.js';
import { parseCommandLine } from './args.js';
import { runCommand } from './commands.js';

async function main(argv: string[]): Promise<number> {
  try {
    const parsed = parseCommandLine(argv);
    if (parsed.help) {
      process.stdout.write(`${parsed.text}\n`);
      return 0;
    }
    if (parsed.args.logFormat) setLogFormat(parsed.args.logFormat);
    return await runCommand(parsed.args);
  } catch (e) {
    if (e instanceof NextbuyError) {
      process.stderr.write(`nextbuy: ${e.message}\n`);
      if (e instanceof UsageError && !/--help' for/.test(e.message)) process.stderr.write("Run 'nextbuy --help' for usage.\n");
      return e.exitCode;
    }
    process.stderr.write(`nextbuy: internal error: ${(e as Error).stack ?? String(e)}\nPlease report this with the command you ran.\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
