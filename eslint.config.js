// ESLint flat config: typescript-eslint, React, hooks and import order, with
// Prettier owning formatting (eslint-config-prettier turns the style rules off).
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import importX from "eslint-plugin-import-x";
import react from "eslint-plugin-react";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["build/", "baml_client/", "node_modules/", "test-results/", ".data/", ".cache/", "db/migrations/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.{ts,tsx,js}"],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    plugins: { "import-x": importX },
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
      ],
      "@typescript-eslint/consistent-type-imports": [
        "error",
        { fixStyle: "inline-type-imports", disallowTypeAnnotations: false },
      ],
      "import-x/no-duplicates": ["error", { "prefer-inline": true }],
      "import-x/order": [
        "error",
        {
          groups: ["builtin", "external", "internal", "parent", "sibling", "index"],
          alphabetize: { order: "asc", caseInsensitive: true },
          "newlines-between": "never",
        },
      ],
    },
  },
  {
    // The layers (README, Architecture): db below sandbox below versions below inngest, app and server. A lower one
    // never imports an upper one; configuration (app/env.server.ts), which every layer reads, is the one exception.
    files: ["db/**/*.ts", "sandbox/**/*.ts", "versions/**/*.ts"],
    ignores: ["**/*.test.ts"],
    settings: { "import-x/resolver": { node: { extensions: [".ts", ".tsx", ".js"] } } },
    rules: {
      "import-x/no-restricted-paths": [
        "error",
        {
          zones: ["./db", "./sandbox", "./versions"].flatMap((target, level, lower) => [
            { target, from: "./app", except: ["./env.server.ts"] },
            ...["./inngest", "./server", ...lower.slice(level + 1)].map((from) => ({ target, from })),
          ]),
        },
      ],
    },
  },
  {
    files: ["app/**/*.tsx"],
    ...react.configs.flat.recommended,
    ...react.configs.flat["jsx-runtime"],
    settings: { react: { version: "detect" } },
  },
  {
    files: ["app/**/*.{ts,tsx}"],
    plugins: { "react-hooks": reactHooks },
    rules: {
      "react-hooks/rules-of-hooks": "error",
      "react-hooks/exhaustive-deps": "error",
    },
  },
  prettier,
);
