// The search page's map for collections of georeferenced chips: each hit's footprint (and, offline, its quicklook),
// a click opens the item page; "Draw a box" then a drag fills the box field and runs the search in it.
(function () {
  "use strict";
  var form = document.getElementById("query-form");
  var bboxField = document.getElementById("bbox");
  var drawButton = document.getElementById("draw-box");
  var holder = document.getElementById("map");
  if (!holder || typeof L === "undefined") {
    if (drawButton) { drawButton.disabled = true; drawButton.title = "run a search first: the map shows its hits"; }
    return;
  }
  var data = JSON.parse(holder.getAttribute("data-map"));
  var map = L.map(holder, { zoomSnap: 0.25, boxZoom: false });
  var basemap = holder.getAttribute("data-basemap");
  if (basemap) {
    L.tileLayer(basemap, { maxZoom: 19, attribution: "basemap: " + new URL(basemap.replace(/[{}]/g, "")).host }).addTo(map);
  }
  var bounds = L.latLngBounds([]);
  data.hits.forEach(function (hit) { bounds.extend([[hit.bbox[1], hit.bbox[0]], [hit.bbox[3], hit.bbox[2]]]); });
  map.fitBounds(bounds.pad(0.1));
  data.hits.forEach(function (hit) {
    var ring = hit.lonlat.map(function (p) { return [p[1], p[0]]; });
    var box = [[hit.bbox[1], hit.bbox[0]], [hit.bbox[3], hit.bbox[2]]];
    if (!basemap) { L.imageOverlay(hit.thumb, box, { opacity: 0.95, alt: hit.image_id }).addTo(map); }
    var shape = L.polygon(ring, { color: hit.rank === 1 ? "#d7301f" : "#2b6cb0", weight: 2, fillOpacity: 0.05,
                                  className: "footprint" });
    shape.bindTooltip("#" + hit.rank + " · " + hit.score.toFixed(3) + (hit.datetime ? " · " + hit.datetime : ""));
    shape.on("click", function () { window.location.href = hit.item; });
    shape.addTo(map);
    bounds.extend(ring);
  });
  if (data.box) {
    var filter = L.rectangle([[data.box[1], data.box[0]], [data.box[3], data.box[2]]],
                             { color: "#444", weight: 1, dashArray: "4 4", fill: false, interactive: false,
                               className: "box-filter" }).addTo(map);
    bounds.extend(filter.getBounds());
  }
  map.fitBounds(bounds.pad(0.1));

  var drawing = false, start = null, rectangle = null;
  function stopDrawing() {
    drawing = false;
    map.dragging.enable();
    holder.classList.remove("drawing");
    drawButton.classList.remove("active");
  }
  drawButton.addEventListener("click", function () {
    drawing = !drawing;
    if (drawing) { map.dragging.disable(); holder.classList.add("drawing"); drawButton.classList.add("active"); }
    else { stopDrawing(); }
  });
  map.on("mousedown", function (event) {
    if (!drawing) { return; }
    start = event.latlng;
    rectangle = L.rectangle([start, start], { color: "#d7301f", weight: 2, fill: false }).addTo(map);
  });
  map.on("mousemove", function (event) {
    if (drawing && start && rectangle) { rectangle.setBounds([start, event.latlng]); }
  });
  map.on("mouseup", function () {
    if (!drawing || !start || !rectangle) { return; }
    var b = rectangle.getBounds();
    start = null;
    stopDrawing();
    bboxField.value = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); }).join(",");
    form.submit();
  });
})();
