"""Generate key pair (a certificate for Apple Business Manager whose private key stays here) and the Key pairs
page, which lists them with the servers using each, their certificates and Delete."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, make_response, redirect, render_template, url_for

from ..downloads import attachment, download, file_stem
from ..extensions import db
from ..htmx import hx_trigger, is_htmx, part_of
from ..models import PendingKeyPair
from ..views import form_done, render_form
from . import bp
from .forms import ActionForm, KeyPairForm
from .key_pairs import all_key_pairs, create_key_pair, delete_key_pair, free_key_pair_name, key_pair_users

EVENT = "keyPairsChanged"


@bp.route("/keys/new", methods=["GET", "POST"])
def new_key_pair():
    """Generate an RSA key pair and a self-signed certificate to upload to Apple Business Manager."""
    form = KeyPairForm()
    if not form.is_submitted():  # suggest a name no key pair has yet
        form.common_name.data = free_key_pair_name(form.common_name.data)
    if form.validate_on_submit():
        pending = create_key_pair(form.common_name.data, form.days.data)
        db.session.commit()
        template = "servers/_keypair_done.html"
        if is_htmx():  # the result replaces the form; the Key pairs page, if that is where it opened, lists it
            return hx_trigger(make_response(render_template(template, pending=pending)), **{EVENT: True})
        return render_template("form_page.html", title="Key pair generated", body_template=template,
                               pending=pending)
    return render_form("servers/_keypair_form.html", "Generate key pair", status=422 if form.errors else 200,
                       form=form)


@bp.route("/keys")
def key_pairs():
    """Every key pair generated here: its certificate, how long it is valid, the servers using it, Delete."""
    return render_template("servers/key_pairs.html", **_table_context())


@bp.route("/keys/table")
@part_of(lambda: url_for("servers.key_pairs"))
def key_pairs_table():
    """The table alone, refreshed after Generate key pair and Delete (keyPairsChanged)."""
    return render_template("servers/_key_pairs_table.html", **_table_context())


def _table_context() -> dict:
    pairs = all_key_pairs()
    return {"pairs": pairs, "users": key_pair_users(pairs), "now": datetime.now(timezone.utc)}


@bp.route("/keys/<int:key_id>")
def key_pair(key_id: int):
    """One key pair: its row of the Key pairs page (the activity log links here)."""
    db.get_or_404(PendingKeyPair, key_id)
    return redirect(url_for("servers.key_pairs", _anchor=f"key-pair-{key_id}"))


@bp.route("/keys/<int:key_id>/delete", methods=["GET", "POST"])
def delete_key_pair_view(key_id: int):
    """Delete a generated key pair, after saying what it changes for the servers using it."""
    pending = db.get_or_404(PendingKeyPair, key_id)
    form = ActionForm()
    if form.validate_on_submit():
        label = pending.label
        delete_key_pair(pending)
        db.session.commit()
        return form_done(f"Key pair “{label}” deleted.", url_for("servers.key_pairs"), EVENT)
    users = key_pair_users([pending]).get(pending.id, [])
    return render_form("servers/_key_pair_delete_form.html", f"Delete key pair {pending.label}", form=form,
                       pending=pending, users=users)


@bp.route("/keys/<int:key_id>/certificate.pem")
@download
def key_certificate(key_id: int):
    """Download the public certificate (never the private key)."""
    pending = db.get_or_404(PendingKeyPair, key_id)
    filename = f"{file_stem(pending.label, 'certificate')}.pem"
    return Response(pending.certificate_pem, mimetype="application/x-pem-file",
                    headers={"Content-Disposition": attachment(filename, "certificate")})


def certificate_url(pending: PendingKeyPair) -> str:
    """Where the certificate of a generated key pair is downloaded."""
    return url_for("servers.key_certificate", key_id=pending.id)
