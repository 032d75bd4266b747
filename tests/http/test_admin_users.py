"""The admin's account page: roles in words, staff added as staff (coordinator by default, never a student without
a school or guardian), accounts disabled and enabled again."""

from __future__ import annotations

import re

from events import people
from tests.conftest import csrf_from, login, make_person


async def test_accounts_show_roles_in_words_and_add_staff(client):
    await make_person("admin", "admin-users@ward.example.jp", name="管理 太郎")
    await make_person("host_family", "family@example.jp", name="金沢 一家")
    await login(client, "admin-users@ward.example.jp")
    shown = await client.get("/admin/users")
    assert shown.status_code == 200 and "ホストファミリー" in shown.text and "管理者" in shown.text
    assert not re.search(r"<td>(host_family|coordinator|admin)(, [a-z_]+)*</td>", shown.text)  # no codes shown
    form = shown.text[shown.text.index('id="new-role"'):]
    form = form[:form.index("</select>")]
    assert '<option value="coordinator" selected>' in form and 'value="student"' not in form
    added = await client.post("/admin/users", data={"_csrf": csrf_from(shown.text), "name": "新任 職員",
                                                    "email": "new-staff@ward.example.jp", "role": "coordinator"})
    assert added.status_code in (200, 303)
    person = await people.find_by_email("new-staff@ward.example.jp")
    assert person is not None and "coordinator" in (await people.get_person(person["id"]))["roles"]
