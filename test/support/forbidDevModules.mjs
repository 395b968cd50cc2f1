// Loaded with `node --import` before a compiled entry point: any attempt to load TypeScript source,
// esbuild or tsx at run time fails loudly (the production build must need none of them).
import { register } from "node:module";

const hook = `
export async function resolve(specifier, context, next) {
  if (/^(esbuild|tsx|typescript|patch-package)(\\/|$)/.test(specifier) || /\\.ts$/.test(specifier)) {
    throw new Error("loaded at run time by the production build: " + specifier);
  }
  return next(specifier, context);
}`;
register("data:text/javascript," + encodeURIComponent(hook));
