// Parse an .ics file with ical.js and print JSON of each VEVENT (UTC start/end instants and key fields).
// Usage: node tests/interop/parse.js file.ics
"use strict";
const fs = require("node:fs");

async function main() {
  const { default: ICAL } = await import("ical.js");
  const text = fs.readFileSync(process.argv[2], "utf8");
  const vcalendar = new ICAL.Component(ICAL.parse(text));
  // Register the calendar's own VTIMEZONEs so TZID=Asia/Tokyo resolves to +09:00, not floating time.
  for (const vtimezone of vcalendar.getAllSubcomponents("vtimezone")) {
    ICAL.TimezoneService.register(vtimezone);
  }
  const toUtc = (time) => (time ? time.toJSDate().toISOString() : null);
  const events = vcalendar.getAllSubcomponents("vevent").map((vevent) => {
    const event = new ICAL.Event(vevent);
    return {
      uid: event.uid,
      sequence: event.sequence,
      summary: event.summary,
      location: event.location,
      description: event.description,
      status: vevent.getFirstPropertyValue("status"),
      start_tzid: event.startDate.zone ? event.startDate.zone.tzid : null,
      start_utc: toUtc(event.startDate),
      end_utc: toUtc(event.endDate),
      organizer: vevent.getFirstPropertyValue("organizer"),
      attendees: vevent.getAllProperties("attendee").map((p) => ({
        value: p.getFirstValue(),
        cn: p.getParameter("cn"),
        partstat: p.getParameter("partstat"),
        rsvp: p.getParameter("rsvp"),
      })),
      alarm_triggers: vevent.getAllSubcomponents("valarm").map((a) => String(a.getFirstPropertyValue("trigger"))),
    };
  });
  process.stdout.write(
    JSON.stringify({
      method: vcalendar.getFirstPropertyValue("method"),
      name: vcalendar.getFirstPropertyValue("x-wr-calname"),
      events,
    }) + "\n",
  );
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
