import { defineConfig } from "vite";

// `npm run dev` serves the pages with hot reload and sends the API to a `bi serve` on :8000.
export default defineConfig({
  build: { outDir: "dist", assetsDir: "assets", sourcemap: true },
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:8000", ws: true },
      "/static/bokeh": "http://127.0.0.1:8000",
    },
  },
});
