// Keeps keyboard focus inside a modal dialog while it is open and gives it back to whatever had
// it before when the dialog closes (WAI-ARIA dialog pattern): Tab and Shift-Tab cycle through the
// dialog's focusable elements (or stay on the dialog itself when it has none). A Svelte action:
// `<div role="dialog" use:trapFocus>`. It must never move focus while the dialog stays open
// except on Tab, and never steal focus back on close if the page moved it somewhere on purpose.

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export function trapFocus(node: HTMLElement) {
  const before = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  function onkey(e: KeyboardEvent) {
    if (e.key !== 'Tab') return;
    const items = [...node.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => el.offsetParent !== null || el === document.activeElement);
    e.preventDefault();
    if (!items.length) { node.focus(); return; }
    const i = items.indexOf(document.activeElement as HTMLElement);
    const next = e.shiftKey ? (i <= 0 ? items.length - 1 : i - 1) : (i < 0 || i === items.length - 1 ? 0 : i + 1);
    items[next].focus();
  }
  // Capture: the dialog decides Tab before any handler inside it.
  node.addEventListener('keydown', onkey, true);
  // Focus that leaves the dialog some other way (a click on the scrim's page, a script) while it
  // is open comes back to it.
  function onfocusin(e: FocusEvent) {
    if (e.target instanceof Node && !node.contains(e.target)) node.focus();
  }
  document.addEventListener('focusin', onfocusin);
  return {
    destroy() {
      node.removeEventListener('keydown', onkey, true);
      document.removeEventListener('focusin', onfocusin);
      // Back where it was, unless closing moved it elsewhere (a link went to another page).
      const current = document.activeElement;
      if (before && before.isConnected && (!current || current === document.body || node.contains(current))) before.focus();
    },
  };
}
