// The dashboard's pages, once: the sidebar, the phone menu and the command palette all list
// them from here (a page added to one and not the others would be unreachable by keyboard).
export interface PageInfo { id: string; label: string; icon: string; hint: string }

export const PAGES: PageInfo[] = [
  { id: 'live', label: 'Live', hint: 'active and waiting sessions', icon: 'M2 8h3l2-5 3 10 2-5h2' },
  { id: 'runs', label: 'Runs', hint: 'every run with totals', icon: 'M3 3h10M3 8h10M3 13h10' },
  { id: 'timeline', label: 'Timeline', hint: 'every event, filters, charts', icon: 'M4 2v12M4 4h8M4 8h6M4 12h9' },
  { id: 'incidents', label: 'Incidents', hint: 'failure clusters', icon: 'M8 2l6.5 11h-13zM8 6.5v3M8 11.5v.5' },
  { id: 'workflows', label: 'Workflows', hint: 'executions and steps', icon: 'M3 4h4v3H3zM9 9h4v3H9zM5 7v3.5h4' },
  { id: 'processes', label: 'Processes', hint: 'traced Python processes', icon: 'M2 3h12v10H2zM4.5 6.5l2 1.5-2 1.5M8 10h3' },
  { id: 'replay', label: 'Replay', hint: 'replay a recorded run', icon: 'M5 3l8 5-8 5z' },
  { id: 'plugins', label: 'Plugins', hint: 'send events to a plugin', icon: 'M6 2v3M10 2v3M4 5h8v3a4 4 0 0 1-8 0zM8 12v2' },
  { id: 'settings', label: 'Settings', hint: 'health, retention, tokens, theme', icon: 'M8 5.5a2.5 2.5 0 1 0 0 5 2.5 2.5 0 0 0 0-5zM8 1.5v2M8 12.5v2M1.5 8h2M12.5 8h2M3.4 3.4l1.4 1.4M11.2 11.2l1.4 1.4M3.4 12.6l1.4-1.4M11.2 4.8l1.4-1.4' },
];
