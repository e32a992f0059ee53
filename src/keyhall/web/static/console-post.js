// Submits the SAML POST form of /console as soon as the page loads (the page's CSP allows no inline script).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("console-post");
  if (form) {
    form.submit();
  }
});
