document.body.dataset.state="signed-out";
