async def test_me_and_unauthenticated(api, app):
    r = await api.http.get("/me")
    assert r.status_code == 200 and r.json()["user_id"] == api.user_id
    r = await api.http.get("/me", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
