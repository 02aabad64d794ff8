#!/usr/bin/env node
// The `nextbuy` command: runs the TypeScript sources through tsx's loader (one way to run, in dev,
// CI and images alike).
import { register } from 'tsx/esm/api';

register();
await import('../jobs/cli.ts');
