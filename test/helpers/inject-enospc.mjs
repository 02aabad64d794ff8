// Preloaded with `node --import` into a real nextbuy process: from the first file opened for writing whose
// path matches NEXTBUY_TEST_ENOSPC_FROM (a regular expression) on, every open for writing fails with
// ENOSPC, as on a disk that has just filled up. Native writers (DuckDB) are not affected.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const from = new RegExp(process.env.NEXTBUY_TEST_ENOSPC_FROM ?? '$^');
let full = false;
const realOpen = fs.promises.open;
fs.promises.open = async function open(file, flags = 'r', mode) {
  const writes = typeof flags === 'string' ? /[wa+]/.test(flags) : (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR)) !== 0;
  if (writes && (full || from.test(String(file)))) {
    full = true;
    const e = new Error(`ENOSPC: no space left on device, open '${file}'`);
    Object.assign(e, { code: 'ENOSPC', errno: -28, syscall: 'open', path: String(file) });
    throw e;
  }
  return realOpen.call(this, file, flags, mode);
};
syncBuiltinESMExports();
