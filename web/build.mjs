// build.mjs bundles the dashboard into dist/ (run by `make web`, from any
// directory). The output is committed and must be the same bytes on every
// machine: no timestamps, no absolute paths, no source maps. Assets are
// named by a hash of their content, so the server may cache them forever;
// index.html, which names them, is written from src/index.html.
import * as esbuild from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["src/main.ts", "src/style.css"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  charset: "utf8",
  sourcemap: false,
  legalComments: "eof",
  entryNames: "[name]-[hash]",
  outdir: "dist/assets",
  // ECharts strips its development checks and warnings on this.
  define: { "process.env.NODE_ENV": '"production"' },
  metafile: true,
  write: false,
  logLevel: "warning",
});

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });
const names = {};
for (const f of result.outputFiles) {
  writeFileSync(f.path, f.contents);
  names[basename(f.path).replace(/-[A-Z0-9]+\./, ".")] = basename(f.path);
}
let html = readFileSync(join(root, "src/index.html"), "utf8");
html = html.replace(/\{\{asset:([\w.]+)\}\}/g, (_, name) => {
  if (!names[name]) throw new Error(`src/index.html names ${name}, which the build did not produce`);
  return "/assets/" + names[name];
});
writeFileSync(join(dist, "index.html"), html);
