// Progressive enhancement for phones (the pages work without it):
// - the menu folds into 「メニュー」 below 40rem;
// - every data table reads as one card per row: each cell gets its column's name (data-label) and the
//   stylesheet lays rows out as cards below 40rem. Without JavaScript the table scrolls in its own box.
document.addEventListener("DOMContentLoaded", function () {
  // A page that follows a live event (the exchange's "my table") reloads itself every N seconds while it is
  // visible; the reader can stop it (WCAG 2.2.1), and without JavaScript it has a plain reload link.
  var refresh = document.querySelector("[data-auto-refresh]");
  if (refresh) {
    var seconds = parseInt(refresh.getAttribute("data-auto-refresh"), 10) || 60;
    var timer = window.setInterval(function () {
      if (document.visibilityState === "visible") window.location.reload();
    }, seconds * 1000);
    var stop = refresh.querySelector("[data-stop-refresh]");
    if (stop) {
      stop.hidden = false;
      stop.addEventListener("click", function () {
        window.clearInterval(timer);
        stop.hidden = true;
        refresh.firstChild.textContent = stop.getAttribute("data-stopped") || "";
      });
    }
  }
  var narrow = window.matchMedia("(max-width: 40rem)");
  var menu = document.querySelector("details.site-menu");
  if (menu && narrow.matches) menu.removeAttribute("open");
  document.querySelectorAll("main table").forEach(function (table) {
    if (table.closest(".calendar, .print-sheet, .no-cards") || table.classList.contains("calendar")) return;
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    if (!heads.length) return;
    table.querySelectorAll("tbody tr").forEach(function (row) {
      Array.prototype.forEach.call(row.children, function (cell, index) {
        if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", heads[index] || "");
      });
    });
    table.setAttribute("data-cards", "");
  });
});
