// The wasm side of `cargo xtask wasm-bench`: loads pkg/ in Node (initSync), runs a scenario to
// its end RUNS times like `podnet run`, and prints `ms <best wall time>`. With NATIVE.json (the
// native side's report), it then prints `same` when the two reports are the same JSON value
// (compared after JSON.parse, as numbers print `3.0` from Rust and `3` from JavaScript), else
// `differ` and both texts around the first difference.
// Usage: node --single-threaded xtask/wasm-bench.mjs PKG_DIR SCENARIO.yaml RUNS [NATIVE.json]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [, , pkgDir, scenario, runs = '5', nativeJson] = process.argv;
const podnet = await import(pathToFileURL(join(pkgDir, 'podnet_wasm.js')).href);
podnet.initSync({ module: readFileSync(join(pkgDir, 'podnet_wasm_bg.wasm')) });
const yaml = readFileSync(scenario, 'utf8');
let best = Infinity;
let report;
for (let i = 0; i < Number(runs); i++) {
  const t0 = performance.now();
  const sim = new podnet.Sim(yaml, { fileName: scenario });
  sim.runToEnd();
  best = Math.min(best, performance.now() - t0);
  report = sim.report();
  sim.free();
}
console.log(`ms ${best}`);
if (nativeJson) {
  const wasm = JSON.stringify(report);
  const native = JSON.stringify(JSON.parse(readFileSync(nativeJson, 'utf8')));
  if (wasm === native) {
    console.log(`same ${wasm.length}`);
  } else {
    let at = 0;
    while (at < wasm.length && wasm[at] === native[at]) at++;
    console.log(`differ at ${at}: native ...${native.slice(Math.max(0, at - 80), at + 80)}`);
    console.log(`                wasm   ...${wasm.slice(Math.max(0, at - 80), at + 80)}`);
  }
}
