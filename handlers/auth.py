"""Self-service authentication (AUTHENTICATION_METHOD=users): /auth/*."""

from decabill.identity import service as identity
from handlers._http import dump, principal


async def login(body: dict):
    result = await identity.login(body["email"], body["password"])
    return {"access_token": result.access_token, "user": dump(result.user, "UserResponse")}, 200


async def register(body: dict):
    user, message = await identity.register(body["email"], body["password"])
    return {"user": dump(user, "UserResponse"), "message": message}, 201


async def confirm_email(body: dict):
    return {"message": await identity.confirm_email(body["email"], body["code"])}, 200


async def request_password_reset(body: dict):
    return {"message": await identity.request_password_reset(body["email"])}, 200


async def reset_password(body: dict):
    message = await identity.reset_password(body["email"], body["code"], body["newPassword"])
    return {"message": message}, 200


async def change_password(body: dict, token_info: dict):
    message = await identity.change_password(
        principal(token_info), body["currentPassword"], body["newPassword"], body["newPasswordConfirmation"]
    )
    return {"message": message}, 200
