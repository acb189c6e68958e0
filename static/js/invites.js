// Copy buttons on the invites page: the link in the same cell goes to the clipboard (a plain-HTTP
// address on a LAN has no clipboard API: then the text is selected and copied the old way).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = button.parentElement.querySelector("input, textarea");
  const done = () => {
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  };
  const fallback = () => {
    field.select();
    try { if (document.execCommand("copy")) done(); } catch (_) { /* the text stays selected */ }
  };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(field.value).then(done, fallback);
  else fallback();
});
