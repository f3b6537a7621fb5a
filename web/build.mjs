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

const common = {
  absWorkingDir: root,
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
  write: false,
  logLevel: "warning",
};
const result = await esbuild.build({
  ...common,
  entryPoints: ["src/main.ts", "src/style.css"],
  // ECharts is a chunk of its own (a dynamic import in src/chart.ts),
  // preloaded by index.html, parsed while the first calls are out.
  splitting: true,
  chunkNames: "[name]-[hash]",
  // ECharts strips its development checks and warnings on this.
  define: { "process.env.NODE_ENV": '"production"' },
});
// boot.ts on its own, without chunks: the page's first script, whose calls
// go out before main.js is loaded, must not wait for a chunk of it.
const boot = await esbuild.build({ ...common, entryPoints: ["src/boot.ts"] });

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });
const names = {};
const chunks = [];
for (const f of [...result.outputFiles, ...boot.outputFiles]) {
  writeFileSync(f.path, f.contents);
  const name = basename(f.path);
  names[name.replace(/-[A-Z0-9]+\./, ".")] = name;
  if (name.endsWith(".js") && !name.startsWith("main-") && !name.startsWith("boot-")) chunks.push(name);
}
chunks.sort();
let html = readFileSync(join(root, "src/index.html"), "utf8");
html = html.replace("{{preload}}", chunks.map((c) => `<link rel="modulepreload" href="/assets/${c}">`).join("\n"));
html = html.replace(/\{\{asset:([\w.]+)\}\}/g, (_, name) => {
  if (!names[name]) throw new Error(`src/index.html names ${name}, which the build did not produce`);
  return "/assets/" + names[name];
});
writeFileSync(join(dist, "index.html"), html);
