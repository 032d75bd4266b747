// Progressive enhancement for phones (the pages work without it):
// - the menu folds into 「メニュー」 below 40rem;
// - every data table reads as one card per row: each cell gets its column's name (data-label) and the
//   stylesheet lays rows out as cards below 40rem. Without JavaScript the table scrolls in its own box.
document.addEventListener("DOMContentLoaded", function () {
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
