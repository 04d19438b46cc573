"""Generate key pair: a certificate for Apple Business Manager whose private key stays here."""
from __future__ import annotations

from flask import Response, render_template, url_for

from ..downloads import attachment, file_stem
from ..extensions import db
from ..htmx import is_htmx
from ..models import PendingKeyPair
from ..views import render_form
from . import bp
from .forms import KeyPairForm
from .services import create_key_pair, free_key_pair_name


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
        if is_htmx():
            return render_template(template, pending=pending)
        return render_template("form_page.html", title="Key pair generated", body_template=template,
                               pending=pending)
    return render_form("servers/_keypair_form.html", "Generate key pair", status=422 if form.errors else 200,
                       form=form)


@bp.route("/keys/<int:key_id>/certificate.pem")
def key_certificate(key_id: int):
    """Download the public certificate (never the private key)."""
    pending = db.get_or_404(PendingKeyPair, key_id)
    filename = f"{file_stem(pending.label, 'certificate')}.pem"
    return Response(pending.certificate_pem, mimetype="application/x-pem-file",
                    headers={"Content-Disposition": attachment(filename, "certificate")})


def certificate_url(pending: PendingKeyPair) -> str:
    """Where the certificate of a generated key pair is downloaded."""
    return url_for("servers.key_certificate", key_id=pending.id)
