import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The hub serves the built files itself and routes are hash-based (#/runs/abc), so the
// server needs no knowledge of UI routes. Relative base lets the bundle work under any prefix.
const hub = process.env.SIGHTLINE_URL ?? 'http://127.0.0.1:4517';

export default defineConfig({
  base: './',
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false, // dist is committed and embedded in the binary: keep it small
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // The hub refuses foreign Host/Origin headers (DNS-rebinding protection), so the dev proxy
    // presents itself as the hub's own origin.
    proxy: Object.fromEntries(
      ['/api', '/ws', '/telemetry'].map((p) => [p, {
        target: hub,
        ws: p === '/ws',
        changeOrigin: true,
        configure: (proxy: any) => proxy.on('proxyReq', (req: any) => { if (req.getHeader('origin')) req.setHeader('origin', hub); }),
      }]),
    ),
  },
});
