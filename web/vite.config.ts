import { defineConfig } from "vite";

// The page imports the wasm package `podnet` (../pkg, built by `cargo xtask pkg`).
export default defineConfig({
  base: "./",
  build: { target: "es2022", outDir: "dist", emptyOutDir: true },
  // What if runs in a module worker with its own instance of the package.
  worker: { format: "es" },
  server: { host: "127.0.0.1", port: 5173, fs: { allow: [".."] } },
  preview: { host: "127.0.0.1", port: 8080, strictPort: true },
});
