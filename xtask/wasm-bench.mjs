// The wasm side of `cargo xtask wasm-bench`: loads pkg/ in Node (initSync), runs a scenario to
// its end RUNS times like `podnet run`, and prints `ms <best wall time>` then the report's JSON.
// Usage: node --single-threaded xtask/wasm-bench.mjs PKG_DIR SCENARIO.yaml RUNS
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [, , pkgDir, scenario, runs = '5'] = process.argv;
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
console.log(JSON.stringify(report));
