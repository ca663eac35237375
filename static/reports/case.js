// The case pages: copy a URL as text, and ask before opening one. Nothing here fetches the URL.
document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const text = document.getElementById(copy.dataset.copy).textContent.trim();
    navigator.clipboard.writeText(text).then(() => {
      copy.textContent = copy.dataset.done || "Copied";
    }, () => {
      copy.textContent = "Select the text and copy it";
    });
    return;
  }
  const open = event.target.closest("[data-confirm]");
  if (open && !window.confirm(open.dataset.confirm)) {
    event.preventDefault();
  }
});
