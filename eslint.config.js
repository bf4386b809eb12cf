// Lint, and the layering of the tree enforced as import rules (README.md, "Layout"):
//   uapi <- trace <- kernel <- hw, iommu <- vfio | iommufd | kvm <- vmm, check, bridge, cli
// src/kvm and src/vfio never import each other: they meet only through the kernel's
// symbol and file-operations machinery, as the real modules do.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const layer = (dir, forbidden) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    "no-restricted-imports": [
      "error",
      {
        patterns: forbidden.map((f) => ({
          group: [`**/${f}/*`, `../${f}`, `../../${f}`],
          message: `src/${dir} may not import src/${f} (layering: see eslint.config.js)`,
        })),
      },
    ],
  },
});

const upper = ["vmm", "check", "cli", "backend", "bridge"];
export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  layer("uapi", ["kernel", "hw", "iommu", "vfio", "iommufd", "kvm", "trace", ...upper]),
  // strace-style decoding of uapi values: below the kernel, which records the trace
  layer("trace", ["kernel", "hw", "iommu", "vfio", "iommufd", "kvm", ...upper]),
  layer("kernel", ["hw", "iommu", "vfio", "iommufd", "kvm", ...upper]),
  layer("hw", ["kernel", "iommu", "vfio", "iommufd", "kvm", ...upper]),
  layer("iommu", ["vfio", "iommufd", "kvm", ...upper]),
  layer("vfio", ["kvm", ...upper]), // vfio links against iommufd, as drivers/vfio/iommufd.c does
  layer("iommufd", ["vfio", "kvm", ...upper]),
  layer("kvm", ["vfio", "iommufd", "iommu", ...upper]),
);
