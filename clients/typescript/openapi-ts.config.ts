// Generates src/gen from the committed openapi.json: `npm run generate` (CI checks it is current).
import { defineConfig } from "@hey-api/openapi-ts";

export default defineConfig({
  input: "../../openapi.json",
  output: { path: "src/gen" },
  plugins: ["@hey-api/typescript", "@hey-api/sdk", "@hey-api/client-fetch"],
});
