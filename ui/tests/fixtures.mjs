// Realistic fixture events in the canonical schema (docs/CONTRACT.md §2): a Claude Code session with
// two subagents, tool calls, a permission prompt and a failure; workflow executions with steps,
// progress and logs; a traced Python process with calls and an exception with locals.
// `tag` makes ids unique so several fixture sets can live in one database.

export function fixtures(tag = 'a', base = Date.now() - 9 * 60 * 1000) {
  let t = base;
  const at = (dms) => { t += dms; return new Date(t).toISOString(); };
  const out = [];
  let n = 0;
  const ev = (dms, e) => {
    out.push({ event_id: `fx-${tag}-${++n}`, ts: at(dms), severity: 'info', tags: [], payload: {}, ...e });
  };

  // ---- Claude Code: main session + two subagents ----------------------------------------
  const run = `claude-${tag}`;
  const main = `sess-main-${tag}`;
  const sub1 = `sess-explore-${tag}`;
  const sub2 = `sess-tests-${tag}`;
  const C = { source: 'claude', run_id: run, host: 'devbox' };
  const M = { ...C, session_id: main, agent: 'main' };
  ev(0, { ...M, source_event: 'SessionStart', entity_type: 'session', status: 'running', title: 'Refactor auth middleware to async', summary: 'cwd ~/src/api · model claude-sonnet-4-5', payload: { cwd: '/home/dev/src/api', model: 'claude-sonnet-4-5', transcript_path: '~/.claude/projects/api/6f1c.jsonl' } });
  ev(900, { ...M, source_event: 'UserPromptSubmit', entity_type: 'prompt', title: 'Make the auth middleware async and add tests for token expiry', summary: 'user prompt · 61 chars', payload: { prompt: 'Make the auth middleware async and add tests for token expiry' } });
  const tool = (S, dms, name, input, ok = true, dur = 120, extra = {}) => {
    const id = `toolu_${tag}_${++n}`;
    ev(dms, { ...S, source_event: 'PreToolUse', entity_type: 'tool', entity_id: id, correlation_id: id, status: 'running', title: name, summary: input.summary, payload: { tool_name: name, tool_input: input.args } });
    ev(dur, { ...S, source_event: ok ? 'PostToolUse' : 'PostToolUseFailure', entity_type: 'tool', entity_id: id, correlation_id: id, status: ok ? 'success' : 'failed', severity: ok ? 'info' : 'error', duration_ms: dur, title: name, summary: input.summary, payload: { tool_name: name, tool_input: input.args, tool_response: extra.response ?? { ok: true } }, ...extra.fields });
  };
  tool(M, 1200, 'Read', { summary: 'src/middleware/auth.ts', args: { file_path: 'src/middleware/auth.ts' } }, true, 35);
  tool(M, 800, 'Grep', { summary: 'verifyToken\\(', args: { pattern: 'verifyToken\\(', path: 'src' } }, true, 210, { response: { matches: 14 } });
  ev(1500, { ...M, source_event: 'assistant', entity_type: 'message', title: 'Assistant message', summary: 'Plan: convert verifyToken to async, update 14 call sites', metrics: { input_tokens: 18400, output_tokens: 1250, cache_read_tokens: 12000, cost_usd: 0.0741 } });
  // Subagent 1: Explore
  const S1 = { ...C, session_id: sub1, parent_session_id: main, agent: 'Explore' };
  ev(700, { ...M, source_event: 'PreToolUse', entity_type: 'tool', entity_id: `toolu_${tag}_task1`, correlation_id: `toolu_${tag}_task1`, status: 'running', title: 'Task', summary: 'Explore: find every caller of verifyToken', payload: { tool_name: 'Task', tool_input: { subagent_type: 'Explore', description: 'find every caller of verifyToken' } } });
  ev(300, { ...S1, source_event: 'SubagentStart', entity_type: 'session', status: 'running', title: 'Explore: callers of verifyToken', payload: { agent_type: 'Explore' } });
  tool(S1, 600, 'Glob', { summary: 'src/**/*.ts', args: { pattern: 'src/**/*.ts' } }, true, 48, { response: { files: 212 } });
  tool(S1, 400, 'Read', { summary: 'src/routes/session.ts', args: { file_path: 'src/routes/session.ts' } }, true, 22);
  tool(S1, 500, 'Read', { summary: 'src/routes/admin.ts', args: { file_path: 'src/routes/admin.ts' } }, true, 19);
  ev(900, { ...S1, source_event: 'assistant', entity_type: 'message', title: 'Assistant message', summary: '14 callers in 6 files; 2 in hot paths', metrics: { input_tokens: 9100, output_tokens: 640, cost_usd: 0.0312 } });
  ev(300, { ...S1, source_event: 'SubagentStop', entity_type: 'session', status: 'success', title: 'Explore: callers of verifyToken', duration_ms: 3900 });
  ev(100, { ...M, source_event: 'PostToolUse', entity_type: 'tool', entity_id: `toolu_${tag}_task1`, correlation_id: `toolu_${tag}_task1`, status: 'success', duration_ms: 4300, title: 'Task', summary: 'Explore finished: 14 callers', payload: { tool_name: 'Task' } });
  tool(M, 1100, 'Edit', { summary: 'src/middleware/auth.ts', args: { file_path: 'src/middleware/auth.ts', old_string: 'function verifyToken(', new_string: 'async function verifyToken(' } }, true, 64);
  tool(M, 900, 'Edit', { summary: 'src/routes/session.ts', args: { file_path: 'src/routes/session.ts' } }, true, 51);
  // Subagent 2: test runner, with a failing Bash call
  const S2 = { ...C, session_id: sub2, parent_session_id: main, agent: 'test-runner' };
  ev(800, { ...S2, source_event: 'SubagentStart', entity_type: 'session', status: 'running', title: 'test-runner: run auth tests', payload: { agent_type: 'test-runner' } });
  tool(S2, 400, 'Bash', { summary: 'npm test -- auth', args: { command: 'npm test -- auth', timeout: 120000 } }, false, 8400, {
    response: { exit_code: 1, stderr: "FAIL src/middleware/auth.test.ts\n  ● token expiry › rejects an expired token\n    expect(received).rejects.toThrow()\n    Received promise resolved instead of rejected" },
    fields: { summary: 'npm test -- auth · exit 1: 1 failed, 23 passed' },
  });
  ev(600, { ...S2, source_event: 'assistant', entity_type: 'message', title: 'Assistant message', summary: 'token expiry test fails: verifyToken no longer awaits jwt.verify', metrics: { input_tokens: 7200, output_tokens: 410, cost_usd: 0.0228 } });
  tool(S2, 500, 'Read', { summary: 'src/middleware/auth.test.ts', args: { file_path: 'src/middleware/auth.test.ts' } }, true, 17);
  // Main asks to delete a build dir: permission prompt → blocked (left open on purpose)
  ev(1400, { ...M, source_event: 'assistant', entity_type: 'message', title: 'Assistant message', summary: 'Fixing the missing await, then cleaning build output', metrics: { input_tokens: 21500, output_tokens: 980, cache_read_tokens: 18000, cost_usd: 0.0815 } });
  ev(700, { ...M, source_event: 'PermissionRequest', entity_type: 'permission', status: 'blocked', severity: 'warn', title: 'Bash: rm -rf build/ dist/', summary: 'Claude needs your permission to use Bash', payload: { tool_name: 'Bash', tool_input: { command: 'rm -rf build/ dist/' }, notification_type: 'permission_prompt' } });

  // ---- Workflows ------------------------------------------------------------------------
  const wfRun = (id, name, steps, endStatus, failAt = -1) => {
    const W = { source: 'workflow', run_id: id, session_id: id, agent: 'scheduler', host: 'ci-runner-2' };
    ev(500, { ...W, source_event: 'status', entity_type: 'workflow', entity_id: name, status: 'running', title: name, summary: `${steps.length} steps`, metrics: { progress: 0 } });
    const upto = endStatus === 'running' ? Math.ceil(steps.length / 2) : steps.length;
    for (let i = 0; i < upto; i++) {
      const s = steps[i];
      ev(300, { ...W, source_event: 'step.start', entity_type: 'step', entity_id: s, status: 'running', title: s, metrics: { progress: 0 } });
      ev(200, { ...W, source_event: 'log', entity_type: 'log', entity_id: s, title: `${s}: started`, summary: `[${s}] starting (attempt 1)` });
      const failing = i === failAt;
      const running = endStatus === 'running' && i === upto - 1;
      ev(400, { ...W, source_event: 'progress', entity_type: 'step', entity_id: s, status: 'running', title: s, metrics: { progress: 50 } });
      ev(100, { ...W, source_event: 'log', entity_type: 'log', entity_id: s, title: `${s}: progress`, summary: `[${s}] processed ${1200 * (i + 1)} rows` });
      if (running) break;
      if (failing) {
        ev(700, { ...W, source_event: 'log', entity_type: 'log', entity_id: s, severity: 'error', title: `${s}: error`, summary: `[${s}] ConnectionResetError: warehouse closed the connection` });
        ev(50, { ...W, source_event: 'error', entity_type: 'step', entity_id: s, status: 'failed', severity: 'error', duration_ms: 1300, title: s, summary: 'ConnectionResetError: warehouse closed the connection', payload: { error: 'ConnectionResetError', retries: 3 } });
        ev(50, { ...W, source_event: 'complete', entity_type: 'workflow', entity_id: name, status: 'failed', severity: 'error', title: name, summary: `failed at step ${s}`, metrics: { progress: Math.round((i / steps.length) * 100) } });
        return;
      }
      ev(600, { ...W, source_event: 'step.complete', entity_type: 'step', entity_id: s, status: 'success', duration_ms: 1300, title: s, metrics: { progress: 100 } });
      ev(50, { ...W, source_event: 'progress', entity_type: 'workflow', entity_id: name, status: 'running', title: name, metrics: { progress: Math.round(((i + 1) / steps.length) * 100) } });
    }
    if (endStatus === 'success') ev(100, { ...W, source_event: 'complete', entity_type: 'workflow', entity_id: name, status: 'success', title: name, summary: 'all steps passed', metrics: { progress: 100 } });
  };
  wfRun(`wf-etl-${tag}`, 'nightly-etl', ['extract', 'validate', 'transform', 'load', 'publish'], 'running');
  wfRun(`wf-docs-${tag}`, 'deploy-docs', ['checkout', 'build', 'upload'], 'success');
  wfRun(`wf-sync-${tag}`, 'crm-sync', ['fetch', 'merge', 'push'], 'failed', 1);

  // ---- Python process ---------------------------------------------------------------------
  const py = `py-${tag}`;
  const P = { source: 'python', run_id: py, session_id: `${py}-main`, agent: 'python', host: 'devbox', pid: 48211, thread_id: 1 };
  ev(300, { ...P, source_event: 'process.start', entity_type: 'process', status: 'running', title: 'python -m billing.worker', summary: 'Python 3.12.7 · pid 48211', payload: { argv: ['python', '-m', 'billing.worker'], python: '3.12.7' } });
  const fns = [
    ['billing.db.fetch_invoices', 18, 6], ['billing.pricing.compute_discount', 0.4, 0.2], ['billing.tax.vat_for', 1.2, 0.5],
    ['billing.render.pdf', 95, 30], ['billing.cache.get', 0.08, 0.03], ['billing.mailer.send', 42, 15],
  ];
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let i = 0; i < 140; i++) {
    const [f, mean, sd] = fns[i % fns.length];
    let d = Math.max(0.01, mean + (rnd() - 0.5) * 2 * sd * 1.7);
    if (i === 57) d = 612; // a pathological slow call
    ev(40, { ...P, source_event: 'call', entity_type: 'call', entity_id: f, status: 'success', duration_ms: Math.round(d * 1000) / 1000, title: f.split('.').pop() + '()', summary: `invoice_id=${1000 + i}`, payload: { args: { invoice_id: 1000 + i }, return: f.endsWith('get') ? 'None' : '<ok>' } });
  }
  ev(60, { ...P, source_event: 'exception', entity_type: 'exception', entity_id: 'billing.pricing.compute_discount', status: 'failed', severity: 'error', title: 'ZeroDivisionError: division by zero', summary: 'in compute_discount (billing/pricing.py:88)', payload: {
    type: 'ZeroDivisionError', message: 'division by zero',
    stack: [
      { function: 'run', file: 'billing/worker.py', line: 41, locals: { self: '<Worker id=3 queue="invoices">', batch: '[<Invoice 1138>, <Invoice 1139>]' } },
      { function: 'process_invoice', file: 'billing/worker.py', line: 77, locals: { invoice: '<Invoice 1139 customer="acme" total=0.00>', retries: '0' } },
      { function: 'compute_discount', file: 'billing/pricing.py', line: 88, locals: { subtotal: 'Decimal("0.00")', qty: '0', tier: "'gold'", rate: 'Decimal("0.15")' } },
    ],
  } });
  ev(30, { ...P, source_event: 'call', entity_type: 'call', entity_id: 'billing.pricing.compute_discount', status: 'failed', severity: 'error', duration_ms: 0.9, title: 'compute_discount()', summary: 'raised ZeroDivisionError' });
  return out;
}

/** Live traffic for the lanes test: a new subagent under an existing main session. */
export function liveBurst(tag, k) {
  const now = new Date().toISOString();
  const main = `sess-main-${tag}`;
  const sid = `sess-live-${tag}-${k}`;
  return [
    { event_id: `live-${tag}-${k}-1`, ts: now, source: 'claude', source_event: 'SubagentStart', run_id: `claude-${tag}`, session_id: sid, parent_session_id: main, agent: 'general-purpose', entity_type: 'session', status: 'running', title: `Live subagent ${k}`, payload: {} },
    { event_id: `live-${tag}-${k}-2`, ts: now, source: 'claude', source_event: 'PreToolUse', run_id: `claude-${tag}`, session_id: sid, parent_session_id: main, agent: 'general-purpose', entity_type: 'tool', entity_id: `tl-${k}`, correlation_id: `tl-${k}`, status: 'running', title: 'WebFetch', summary: 'https://example.invalid/docs', payload: { tool_name: 'WebFetch' } },
  ];
}
