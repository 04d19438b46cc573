"""The home page and the areas of the navigation that are not built yet (empty states)."""
from flask import Blueprint, redirect, render_template, url_for

bp = Blueprint("areas", __name__)

# Areas still to come: each says what will appear there, so nobody mistakes them for broken pages.
UPCOMING = {
    "profiles": ("Enrollment Profiles", "/profiles",
                 "Enrollment profiles of every managed server will be listed here: what Apple shows a device "
                 "during Setup Assistant, whether the profile is configured at Apple, and its devices."),
    "configurations": ("MDM Server Configurations", "/configurations",
                       "MDM server configurations will be listed here: the enrollment URL devices are sent to "
                       "and the SSL certificates they must trust. You assign one to each managed server."),
}


@bp.route("/")
def home():
    """The portal opens on Device Assignment, as the product does."""
    return redirect(url_for("servers.index"))


def _upcoming_view(key: str):
    title, _, text = UPCOMING[key]

    def view():
        return render_template("areas/empty.html", area=key, title=title, text=text)

    view.__name__ = key
    view.__doc__ = f"{title} (empty state)."
    return view


for _key, (_title, _rule, _text) in UPCOMING.items():
    bp.add_url_rule(_rule, _key, _upcoming_view(_key))
