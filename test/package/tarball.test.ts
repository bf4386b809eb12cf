// The package as a user gets it: `npm pack` the tree, install the tarball into a scratch
// project (offline from npm's cache, without optional dependencies, so without koffi),
// check the tarball's file list, type-check and run every example of README.md and docs/
// that imports vfio-twin there, and run the installed CLI.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  exports: Record<string, string | { types: string; default: string }>;
  bin: Record<string, string>;
};
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

/** The ```js blocks of a markdown file that import the package. */
export function examples(md: string): string[] {
  return [...md.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((c) => /from "vfio-twin[/"]/.test(c));
}

test("the packed tarball installs into a fresh project, its README examples type-check and run there", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "vfio-twin-pack-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = {
    ...process.env,
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
  };

  // --ignore-scripts: `prepare` would rebuild; npm test has just built dist/
  const packed = JSON.parse(
    execFileSync(NPM, ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], {
      cwd: ROOT,
      env,
      encoding: "utf8",
    }),
  ) as { filename: string; files: { path: string }[] }[];
  const files = new Set(packed[0]!.files.map((f) => f.path));

  // the files list: what a user needs, and nothing of the tree's own
  for (const [sub, target] of Object.entries(pkg.exports)) {
    const paths = typeof target === "string" ? [target] : [target.types, target.default];
    for (const p of paths) assert.ok(files.has(p.replace(/^\.\//, "")), `exports["${sub}"] -> ${p} is packed`);
  }
  for (const b of Object.values(pkg.bin)) assert.ok(files.has(b.replace(/^\.\//, "")), `bin ${b} is packed`);
  for (const f of [
    "LICENSE",
    "README.md",
    "package.json",
    "docs/design.md",
    "native/preload.c",
    "scripts/build-native.sh",
  ])
    assert.ok(files.has(f), `${f} is packed`);
  const stray = [...files].filter(
    (f) =>
      /^(src|test|bench|dist\/test|dist\/bench|dist\/native|node_modules)\//.test(f) ||
      /\.(map|tsbuildinfo|so|o)$/.test(f) ||
      (f.startsWith("dist/") && !/\.(js|d\.ts)$/.test(f)),
  );
  assert.deepEqual(stray, [], "nothing but the compiled library, its docs and the preload's sources");
  assert.match(readFileSync(join(ROOT, "LICENSE"), "utf8"), /GNU GENERAL PUBLIC LICENSE\s+Version 2, June 1991/);

  // a user's project; the tarball installed from npm's cache, no optional dependency (koffi)
  const proj = join(dir, "proj");
  mkdirSync(proj);
  writeFileSync(join(proj, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
  execFileSync(
    NPM,
    ["install", "--prefer-offline", "--omit=optional", "--ignore-scripts", join(dir, packed[0]!.filename)],
    { cwd: proj, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  const installed = readdirSync(join(proj, "node_modules"));
  assert.ok(installed.includes(pkg.name));
  assert.ok(!installed.includes("koffi"), "koffi is optional");

  // every example of the README and the docs, as a user's module
  const mds = ["README.md", ...readdirSync(join(ROOT, "docs")).map((f) => `docs/${f}`)];
  const ex: string[] = [];
  for (const md of mds.filter((f) => f.endsWith(".md")))
    examples(readFileSync(join(ROOT, md), "utf8")).forEach((code, i) => {
      const name = `${md.replace(/\W/g, "_")}_${i}.mjs`;
      writeFileSync(join(proj, name), code);
      ex.push(name);
    });
  assert.ok(ex.length >= 4, `the README's and docs' examples (${ex.join(", ")})`);
  // each subpath export, named by the README, resolves with its declarations
  const subpaths = Object.keys(pkg.exports).filter((s) => s !== "./package.json");
  writeFileSync(
    join(proj, "surface.ts"),
    subpaths.map((s, i) => `import * as m${i} from "${s.replace(/^\./, pkg.name)}";\nvoid m${i};`).join("\n") +
      '\nimport { createHost } from "vfio-twin";\nexport const h: () => unknown = createHost;\n',
  );
  writeFileSync(
    join(proj, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        module: "NodeNext",
        moduleResolution: "NodeNext",
        target: "ES2022",
        lib: ["ES2023"],
        strict: true,
        noImplicitAny: false,
        allowJs: true,
        checkJs: true,
        noEmit: true,
        skipLibCheck: true,
        types: ["node"],
        typeRoots: [join(ROOT, "node_modules/@types")],
      },
      include: ["*.mjs", "*.ts"],
    }),
  );
  const tsc = spawnSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", proj], {
    encoding: "utf8",
  });
  assert.equal(tsc.status, 0, `the examples type-check against the installed .d.ts:\n${tsc.stdout}${tsc.stderr}`);

  for (const name of ex) {
    const r = spawnSync(process.execPath, [name], { cwd: proj, encoding: "utf8" });
    assert.equal(r.status, 0, `${name} runs:\n${r.stdout}${r.stderr}`);
    assert.equal(r.stderr, "", name);
  }

  // every subpath loads at run time too (without koffi) and has exports
  const subs = subpaths.map((s) => s.replace(/^\./, pkg.name));
  const load = spawnSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `for (const s of ${JSON.stringify(subs)}) { const m = await import(s); if (Object.keys(m).length === 0) throw new Error(s); }`,
    ],
    { cwd: proj, encoding: "utf8" },
  );
  assert.equal(load.status, 0, load.stderr);

  // the bridge's preload library builds from the packaged C sources (system compiler)
  const pre = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", 'import { preloadLibrary } from "vfio-twin/bridge"; console.log(preloadLibrary());'],
    { cwd: proj, encoding: "utf8" },
  );
  assert.equal(pre.status, 0, pre.stderr);
  assert.equal(pre.stdout, `${join(proj, "node_modules/vfio-twin/dist/native/libvfiotwin.so")}\n`);
  assert.ok(existsSync(pre.stdout.trim()));

  // without koffi: the main entry loads, the host backend says how to add it
  const host = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", 'import { createHost } from "vfio-twin"; createHost().spawn();'],
    { cwd: proj, encoding: "utf8" },
  );
  assert.notEqual(host.status, 0);
  assert.match(host.stderr, /koffi, an optional dependency, is not installed; add it with `npm install koffi`/);

  // the installed CLI
  const bin = join(proj, "node_modules/.bin/vfio-twin");
  const v = spawnSync(bin, ["--version"], { cwd: proj, encoding: "utf8" });
  assert.equal(v.stdout, `${pkg.version}\n`);
  const demo = spawnSync(bin, ["demo", "--json"], { cwd: proj, encoding: "utf8" });
  assert.equal(demo.status, 0, demo.stderr);
  const last = JSON.parse(demo.stdout.trim().split("\n").at(-1)!) as { type: string; ok: boolean };
  assert.deepEqual(last, { type: "invariants", ok: true, violations: [] });
  const run = spawnSync(bin, ["run", "--", "true"], { cwd: proj, encoding: "utf8" });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /^vfio-twin run: vfio-twin run needs the host kernel: koffi, .* `npm install koffi`\n$/);
});
