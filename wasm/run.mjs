// Runs memokit-wasm-check's two builds under Node.js (20 or later), with no other tool:
//   node wasm/run.mjs <wasm32-unknown-unknown module> <wasm32-wasip1 program>
// The first is instantiated with no imports (memokit needs no JavaScript glue there) and driven
// through its exports; the second runs under Node's WASI. Exits non-zero if a check fails.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";

const [unknownPath, wasiPath] = process.argv.slice(2);
assert.ok(unknownPath && wasiPath, "usage: node run.mjs <unknown.wasm> <wasip1.wasm>");

// --- wasm32-unknown-unknown -------------------------------------------------------------------
const unknownModule = await WebAssembly.compile(await readFile(unknownPath));
const imports = WebAssembly.Module.imports(unknownModule);
assert.deepEqual(imports, [], `the module needs no imports, it has ${JSON.stringify(imports)}`);
const instantiate = async () => (await WebAssembly.instantiate(unknownModule, {})).exports;
const report = (module) =>
  new TextDecoder().decode(new Uint8Array(module.memory.buffer, module.report_ptr(), module.report_len()));

const web = await instantiate();
const passed = web.memokit_check();
process.stdout.write(report(web));
assert.equal(passed, 1, `wasm32-unknown-unknown: ${report(web)}`);

// Time-to-live on the clock installed with memokit::set_time_source (here one this script moves,
// as performance.now() would).
web.set_now_ms(5_000);
assert.equal(web.install_clock(), 1, "the time source was installed already");
assert.equal(web.install_clock(), 0, "a second time source replaced the first");
const first = web.expiring(1);
web.set_now_ms(5_000 + 59_000);
assert.equal(web.expiring(1), first, "expired before its ttl of a minute");
web.set_now_ms(5_000 + 60_000);
assert.equal(web.expiring(1), first + 1, "not recomputed once its ttl of a minute had passed");
console.log("#[cached(ttl = \"1m\")] with memokit::set_time_source: expired after 60 s, not before");

// Without a time source, time stands still: nothing expires by age.
const still = await instantiate();
const kept = still.expiring(1);
still.set_now_ms(1e12);
assert.equal(still.expiring(1), kept, "expired with no time source");
console.log("#[cached(ttl = \"1m\")] with no time source: kept (time stands still)");
console.log("memokit-wasm-check on wasm32-unknown-unknown: every check passed");

// --- wasm32-wasip1 ----------------------------------------------------------------------------
const wasi = new WASI({ version: "preview1", args: ["memokit-wasm-check"], env: {}, returnOnExit: true });
const program = await WebAssembly.instantiate(await WebAssembly.compile(await readFile(wasiPath)), wasi.getImportObject());
const code = wasi.start(program);
assert.equal(code, 0, `wasm32-wasip1: the program exited with ${code}`);
