// Runs a wasm32-wasip1 program under Node's built-in WASI, forwarding arguments.
// Usage: node --single-threaded xtask/wasi-run.mjs PROGRAM.wasm [ARGS...]
// --single-threaded: with V8's background threads, Node 20.20 crashed (SIGSEGV in
// Builtins_KeyedLoadIC_Megamorphic) in most runs of examples/digest.wasm; single-threaded it
// ran 10 times out of 10.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import { argv } from 'node:process';

const [, , path, ...args] = argv;
const wasi = new WASI({ version: 'preview1', args: [path, ...args], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(path));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
const code = wasi.start(instance);
process.exit(code ?? 0);
